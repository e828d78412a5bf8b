"""Where the project lives and which database a command talks to.

Targets mirror profiles.yml.example: ``local`` (embedded server, the default), ``neon`` (NEON_* variables)
and ``ci`` (the standard libpq PG* variables).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict

from arc_halo.errors import ArcHaloError, ConfigurationError, InvalidInputError

TARGETS = ("local", "neon", "ci")
NEON_VARIABLES = ("NEON_HOST", "NEON_USER", "NEON_PASSWORD", "NEON_DATABASE")
CI_VARIABLES = ("PGHOST", "PGUSER", "PGDATABASE")
# Neon scales compute to zero; waking it takes a few seconds, so allow for that before calling a host dead.
NEON_CONNECT_TIMEOUT_SECONDS = 15
NEON_CONNECT_ATTEMPTS = 3
LOCAL_DATABASE = "arc_halo"
DEFAULT_POSTGRES_VERSION = 18
SAFE_SSLMODES = ("require", "verify-ca", "verify-full")


def project_dir() -> Path:
    """The dbt project root: ARC_HALO_PROJECT_DIR, else the nearest parent of cwd with dbt_project.yml,
    else the checkout this package was installed from (editable install)."""
    explicit = os.environ.get("ARC_HALO_PROJECT_DIR")
    if explicit:
        return Path(explicit).resolve()
    for candidate in (Path.cwd(), *Path.cwd().parents):
        if (candidate / "dbt_project.yml").is_file() and (candidate / "src" / "arc_halo").is_dir():
            return candidate
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "dbt_project.yml").is_file():
        return checkout
    raise ArcHaloError("cannot find the Arc-Halo project: run from the repository or set ARC_HALO_PROJECT_DIR")


def state_dir() -> Path:
    """Git-ignored local state (embedded data directories) inside the project."""
    return Path(os.environ.get("ARC_HALO_STATE_DIR", project_dir() / ".arc_halo")).resolve()


def local_database() -> str:
    """The local database commands use: arc_halo, or the local branch ARC_HALO_BRANCH names."""
    from arc_halo.branches import branch_database

    try:
        return branch_database(LOCAL_DATABASE, os.environ.get("ARC_HALO_BRANCH"))
    except InvalidInputError as exc:
        raise ConfigurationError(f"ARC_HALO_BRANCH: {exc}") from None


def postgres_version() -> int:
    raw = os.environ.get("ARC_HALO_PG_VERSION", str(DEFAULT_POSTGRES_VERSION))
    if raw not in ("16", "18"):
        raise ArcHaloError(f"ARC_HALO_PG_VERSION={raw} is not available embedded: use 16 or 18")
    return int(raw)


def current_target() -> str:
    target = os.environ.get("ARC_HALO_TARGET", "local")
    if target not in TARGETS:
        raise ArcHaloError(f"ARC_HALO_TARGET={target} is unknown: use one of {', '.join(TARGETS)}")
    return target


def require_variables(names: tuple[str, ...], target: str) -> None:
    """Name every missing variable at once, not one per attempt."""
    missing = [name for name in names if not os.environ.get(name)]
    if missing:
        raise ArcHaloError(f"target '{target}' needs {', '.join(missing)} set in the environment (see README, Targets)")


def is_local_host(host: str | None) -> bool:
    """This machine: the default socket (no host), a socket directory ('/...', or '@...' for Linux's
    abstract namespace), localhost, or a loopback address."""
    host = (host or "").strip()
    if not host or host.startswith(("/", "@")) or host.lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or bool(mapped and mapped.is_loopback)


def check_libpq_transport(conninfo: str | Mapping[str, object], source: str) -> None:
    """Refuse plaintext or opportunistic TLS (sslmode below require) to any server that libpq would
    reach and that is not this machine. Checks what libpq will use, not what the string seems to say:
    the last of duplicate keys, URL query parameters over the URL's host, every host of a multi-host
    list, hostaddr (libpq connects there, whatever host says), and for what the string leaves out the
    service file and the PG* environment variables (PGHOST, PGHOSTADDR, PGSSLMODE, PGSERVICE...).
    Parses only; never connects."""
    try:
        explicit = conninfo_to_dict(conninfo) if isinstance(conninfo, str) else {
            key: str(value) for key, value in conninfo.items() if value is not None and value != ""}
    except psycopg.ProgrammingError as exc:
        raise ConfigurationError(f"{source} is not a libpq connection string: {_first_line(exc)}") from None
    service = _service_parameters(explicit["service"]) if "service" in explicit else {}
    defaults = {option.keyword.decode(): option.val.decode()
                for option in psycopg.pq.Conninfo.get_defaults() if option.val is not None}
    params = {**defaults, **service, **explicit}
    sslmode = params.get("sslmode", "prefer")
    if sslmode in SAFE_SSLMODES:
        return
    hosts = params.get("host", "").split(",")
    addresses = params.get("hostaddr", "").split(",")
    # libpq pairs the i-th host with the i-th hostaddr and connects to the address when there is one.
    reached = [(addresses[i] if i < len(addresses) else "").strip() or (hosts[i] if i < len(hosts) else "")
               for i in range(max(len(hosts), len(addresses)))]
    remote = [host for host in reached if not is_local_host(host)]
    if remote:
        origin = ("" if "sslmode" in explicit else " (service file)" if "sslmode" in service
                  else " (PGSSLMODE)" if os.environ.get("PGSSLMODE") else " (default)")
        raise ConfigurationError(f"{source}: sslmode={sslmode}{origin} for remote host {remote[0]} is refused; "
                                 "use sslmode=require or stronger")


def _service_parameters(name: str) -> dict[str, str]:
    """The parameters a pg_service.conf section gives (the file libpq reads for service=...)."""
    import configparser

    candidates = [os.environ.get("PGSERVICEFILE") or str(Path.home() / ".pg_service.conf")]
    if os.environ.get("PGSYSCONFDIR"):
        candidates.append(str(Path(os.environ["PGSYSCONFDIR"]) / "pg_service.conf"))
    for candidate in candidates:
        parser = configparser.ConfigParser(interpolation=None)
        if parser.read(candidate) and parser.has_section(name):
            return dict(parser.items(name))
    return {}


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


@dataclass(frozen=True)
class RemoteDatabase:
    """A database named by a URL (NEON_DATABASE_URL, ARC_HALO_DATABASE_URL)."""

    url: str
    host: str | None
    sslmode: str | None


def parse_database_url(url: str, source: str) -> RemoteDatabase:
    """A libpq connection string in either form: postgresql://... or key=value pairs."""
    if "://" in url:
        scheme = url.split("://", 1)[0]
        if scheme not in ("postgres", "postgresql"):
            raise ConfigurationError(f"{source} must start with postgresql:// (or be key=value pairs), got '{scheme}://'")
    check_libpq_transport(url, source)
    info = conninfo_to_dict(url)
    return RemoteDatabase(url=url, host=info.get("host"), sslmode=info.get("sslmode"))


def configured_database_url() -> RemoteDatabase | None:
    """A database URL from the environment, if one is set; None means use the embedded server."""
    for name in ("ARC_HALO_DATABASE_URL", "NEON_DATABASE_URL"):
        value = os.environ.get(name)
        if value:
            return parse_database_url(value, name)
    return None
