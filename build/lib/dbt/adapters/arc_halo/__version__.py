version = "0.1.0"  # the arc-halo package version; dbt logs it as "Registered adapter: arc_halo=..."
