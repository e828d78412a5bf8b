{#- dbt_utils' unique_combination_of_columns (the dbt hub is out of reach here): no two rows share
    the same values in `columns`. -#}
{% test unique_combination(model, columns) %}

select {{ columns | join(', ') }}
from {{ model }}
group by {{ columns | join(', ') }}
having count(*) > 1

{% endtest %}
