"""Issue 10 §5: any server that is not this machine needs sslmode=require or stronger, judged on what
libpq will actually use. Parsing only: nothing here connects anywhere (the remote names are reserved
documentation names and addresses: example.com, 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::)."""

from __future__ import annotations

import os

import pytest

from arc_halo import environments, targets
from arc_halo.conninfo import check_libpq_transport, parse_database_url
from arc_halo.errors import ConfigurationError

SERVICE_FILE = """\
[remote]
host=db.example.com
sslmode=disable

[remote-tls]
host=db.example.com
sslmode=verify-full

[local]
host=/tmp
"""

REFUSED = [
    # (case, connection string, environment, the host named in the refusal)
    ("no sslmode: libpq's default is prefer", "host=db.example.com dbname=x", {}, "db.example.com"),
    ("sslmode=disable", "host=db.example.com sslmode=disable", {}, "db.example.com"),
    ("URL sslmode=allow", "postgresql://db.example.com/x?sslmode=allow", {}, "db.example.com"),
    ("URL sslmode=prefer", "postgresql://u@db.example.com:5432/x?sslmode=prefer", {}, "db.example.com"),
    ("duplicate key: the last sslmode wins", "host=db.example.com sslmode=require sslmode=disable", {}, "db.example.com"),
    ("duplicate URL parameter: the last wins", "postgresql://db.example.com/x?sslmode=require&sslmode=disable", {},
     "db.example.com"),
    ("query host overrides the URL's local host", "postgresql://localhost/x?host=db.example.com", {}, "db.example.com"),
    ("duplicate host key: the last wins", "host=localhost host=db.example.com", {}, "db.example.com"),
    ("second host of a URL host list", "postgresql://localhost,db.example.com:5433/x", {}, "db.example.com"),
    ("second host of a key=value host list", "host=/tmp,db.example.com", {}, "db.example.com"),
    ("hostaddr beats a local host name", "host=localhost hostaddr=203.0.113.5", {}, "203.0.113.5"),
    ("hostaddr as a URL parameter", "postgresql://localhost/x?hostaddr=203.0.113.5", {}, "203.0.113.5"),
    ("second hostaddr of a list", "host=localhost,localhost hostaddr=127.0.0.1,198.51.100.7", {}, "198.51.100.7"),
    ("PGHOSTADDR fills in what the string leaves out", "host=localhost dbname=x", {"PGHOSTADDR": "203.0.113.5"},
     "203.0.113.5"),
    ("PGHOST fills in the host", "dbname=x", {"PGHOST": "db.example.com"}, "db.example.com"),
    ("PGHOST list", "dbname=x", {"PGHOST": "/tmp,db.example.com"}, "db.example.com"),
    ("PGSSLMODE=disable applies when the string has none", "host=db.example.com", {"PGSSLMODE": "disable"},
     "db.example.com"),
    ("the string's sslmode beats PGSSLMODE", "host=db.example.com sslmode=prefer", {"PGSSLMODE": "require"},
     "db.example.com"),
    ("service file named in the string", "service=remote dbname=x", {}, "db.example.com"),
    ("service file named by PGSERVICE", "dbname=x", {"PGSERVICE": "remote"}, "db.example.com"),
    ("a service's host with the string's weak sslmode", "service=remote-tls sslmode=allow", {}, "db.example.com"),
    ("IPv6 address", "host=2001:db8::1 sslmode=disable", {}, "2001:db8::1"),
    ("bracketed IPv6 in a URL", "postgresql://[2001:db8::1]:5432/x", {}, "2001:db8::1"),
    ("percent-encoded host name", "postgresql://db%2Eexample%2Ecom/x", {}, "db.example.com"),
    ("a name that merely starts like loopback", "host=127.0.0.1.nip.example.com", {}, "127.0.0.1.nip.example.com"),
    ("the unspecified address is not this machine's name", "host=0.0.0.0", {}, "0.0.0.0"),
    ("sslmode is case-sensitive in libpq", "host=db.example.com sslmode=REQUIRE", {}, "db.example.com"),
]

ACCEPTED = [
    ("default socket", "dbname=x", {}),
    ("socket directory", "host=/tmp/socket dbname=x", {}),
    ("percent-encoded socket directory in a URL", "postgresql://%2Ftmp%2Fsocket/x", {}),
    ("socket directory as a URL parameter", "postgresql:///x?host=/tmp/socket", {}),
    ("abstract socket (Linux)", "host=@arc-halo", {}),
    ("localhost", "postgresql://localhost/x", {}),
    ("loopback IPv4", "host=127.0.0.1 sslmode=disable", {}),
    ("anywhere in 127/8", "host=127.5.6.7", {}),
    ("loopback IPv6", "postgresql://[::1]:5432/x", {}),
    ("IPv4-mapped loopback", "host=::ffff:127.0.0.1", {}),
    ("local host list", "host=localhost,/tmp,127.0.0.1", {}),
    ("remote with require", "host=db.example.com sslmode=require", {}),
    ("remote with verify-ca", "postgresql://db.example.com/x?sslmode=verify-ca", {}),
    ("remote with verify-full", "postgresql://u:p@db.example.com/x?sslmode=verify-full", {}),
    ("remote host list with require", "postgresql://db1.example.com,db2.example.com/x?sslmode=require", {}),
    ("duplicate key: the last sslmode wins", "host=db.example.com sslmode=disable sslmode=require", {}),
    ("query host overrides the URL's remote host", "postgresql://db.example.com/x?host=/tmp/socket", {}),
    ("hostaddr loopback: libpq connects there", "host=db.example.com hostaddr=127.0.0.1", {}),
    ("PGSSLMODE=require covers a remote host", "host=db.example.com", {"PGSSLMODE": "require"}),
    ("PGHOST socket", "dbname=x", {"PGHOST": "/tmp/socket"}),
    ("service with verify-full", "service=remote-tls", {}),
    ("local service", "service=local sslmode=disable", {}),
]


@pytest.fixture
def libpq_environment(monkeypatch, tmp_path):
    """No PG* variable from the caller's shell; a private service file; sets the case's variables."""
    for name in list(os.environ):
        if name.startswith("PG"):
            monkeypatch.delenv(name)
    service_file = tmp_path / "pg_service.conf"
    service_file.write_text(SERVICE_FILE)
    monkeypatch.setenv("PGSERVICEFILE", str(service_file))

    def apply(variables: dict[str, str]) -> None:
        for name, value in variables.items():
            monkeypatch.setenv(name, value)

    return apply


@pytest.mark.parametrize(("case", "conninfo", "environment", "host"), REFUSED, ids=[case[0] for case in REFUSED])
def test_weak_tls_to_a_remote_server_is_refused(libpq_environment, case, conninfo, environment, host) -> None:
    libpq_environment(environment)
    with pytest.raises(ConfigurationError, match=rf"sslmode=\S+ .*for remote host {host} is refused"):
        check_libpq_transport(conninfo, "ARC_HALO_DATABASE_URL")


@pytest.mark.parametrize(("case", "conninfo", "environment"), ACCEPTED, ids=[case[0] for case in ACCEPTED])
def test_this_machine_or_strong_tls_is_accepted(libpq_environment, case, conninfo, environment) -> None:
    libpq_environment(environment)
    check_libpq_transport(conninfo, "ARC_HALO_DATABASE_URL")


def test_the_refusal_says_where_the_weak_sslmode_came_from(libpq_environment) -> None:
    with pytest.raises(ConfigurationError, match=r"^NEON_DATABASE_URL: sslmode=prefer \(default\) for remote host"):
        check_libpq_transport("host=db.example.com", "NEON_DATABASE_URL")
    libpq_environment({"PGSSLMODE": "allow"})
    with pytest.raises(ConfigurationError, match=r"sslmode=allow \(PGSSLMODE\)"):
        check_libpq_transport("host=db.example.com", "NEON_DATABASE_URL")
    with pytest.raises(ConfigurationError, match=r"sslmode=disable \(service file\)"):
        check_libpq_transport("service=remote", "NEON_DATABASE_URL")


def test_every_entry_point_applies_the_rule(libpq_environment, monkeypatch) -> None:
    """The library's URL variables, the `ci` and `neon` dbt targets and `ci` pointed at a URL all check
    what libpq will use (a PGHOSTADDR in the environment redirects a localhost that dbt passes)."""
    monkeypatch.setenv("ARC_HALO_DATABASE_URL", "postgresql://localhost/x?host=db.example.com")
    with pytest.raises(ConfigurationError, match="^ARC_HALO_DATABASE_URL: sslmode=prefer"):
        targets.configured_database_url()
    monkeypatch.delenv("ARC_HALO_DATABASE_URL")
    libpq_environment({"PGHOST": "localhost", "PGUSER": "u", "PGDATABASE": "d", "PGHOSTADDR": "203.0.113.5"})
    monkeypatch.setenv("ARC_HALO_TARGET", "ci")
    with pytest.raises(ConfigurationError, match="target 'ci'.*remote host 203.0.113.5"):
        environments.target_environment(check_reachable=False)
    with pytest.raises(ConfigurationError, match="database URL.*remote host 203.0.113.5"):
        environments.url_environment("postgresql://localhost/x")
    monkeypatch.setenv("ARC_HALO_TARGET", "neon")
    for name, value in {"NEON_HOST": "ep-1.example.com", "NEON_USER": "u", "NEON_PASSWORD": "p",
                        "NEON_DATABASE": "d", "NEON_SSLMODE": "prefer"}.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError, match="target 'neon'.*sslmode=prefer"):
        environments.target_environment(check_reachable=False)


def test_a_malformed_connection_string_is_one_clear_error(libpq_environment) -> None:
    with pytest.raises(ConfigurationError, match="^ARC_HALO_DATABASE_URL is not a libpq connection string"):
        parse_database_url("host=db.example.com sslmod=require", "ARC_HALO_DATABASE_URL")
