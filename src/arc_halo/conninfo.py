"""What a libpq connection string says, parsed only (never connects): URL forms, whether TLS is strong
enough for the host it reaches, and whether it goes through a transaction-mode pooler."""

from __future__ import annotations

import configparser
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from arc_halo import validation
from arc_halo.errors import ConfigurationError, InvalidInputError, first_line

SAFE_SSLMODES = ("require", "verify-ca", "verify-full")
POOLED_VARIABLE = "ARC_HALO_POOLED"
# libpq connection keywords and the environment variables libpq (and the `ci` target) read them from.
LIBPQ_VARIABLES = {"host": "PGHOST", "hostaddr": "PGHOSTADDR", "port": "PGPORT", "user": "PGUSER",
                   "password": "PGPASSWORD", "dbname": "PGDATABASE", "sslmode": "PGSSLMODE"}  # pragma: allowlist secret


def _string_parameters(conninfo: str) -> dict[str, str]:
    """conninfo_to_dict of a string alone: libpq parses every value as text (ints come only from keywords)."""
    return cast(dict[str, str], conninfo_to_dict(conninfo))


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
        explicit = _string_parameters(conninfo) if isinstance(conninfo, str) else {
            key: str(value) for key, value in conninfo.items() if value is not None and value != ""}
    except psycopg.ProgrammingError as exc:
        raise ConfigurationError(f"{source} is not a libpq connection string: {first_line(exc)}") from None
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
    candidates = [os.environ.get("PGSERVICEFILE") or str(Path.home() / ".pg_service.conf")]
    if os.environ.get("PGSYSCONFDIR"):
        candidates.append(str(Path(os.environ["PGSYSCONFDIR"]) / "pg_service.conf"))
    for candidate in candidates:
        parser = configparser.ConfigParser(interpolation=None)
        if parser.read(candidate) and parser.has_section(name):
            return dict(parser.items(name))
    return {}


def parsed_conninfo(conninfo: object, source: str) -> dict[str, str]:
    """The keywords of a libpq connection string; anything else is refused naming `source`."""
    try:
        return _string_parameters(validation.text(source, conninfo))
    except psycopg.ProgrammingError as exc:
        raise InvalidInputError(f"{source} is not a libpq connection string: {first_line(exc)}") from None


def connection_string(base: str = "", **fields: object) -> str:
    """The one way the library makes a libpq connection string: `base` (a URL or key=value string, or
    nothing) with `fields` over it, through psycopg's make_conninfo. Fields that are None or empty are left
    out, so libpq's defaults and environment apply to them."""
    return make_conninfo(base, **{key: str(value) for key, value in fields.items() if value not in (None, "")})


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
    info = _string_parameters(url)
    return RemoteDatabase(url=url, host=info.get("host"), sslmode=info.get("sslmode"))


def is_pooled(url: str) -> bool:
    """True for a transaction-mode pooler: ARC_HALO_POOLED=1/0 when set, else a host named `*-pooler`
    (Neon's pooled endpoints)."""
    explicit = os.environ.get(POOLED_VARIABLE, "").strip().lower()
    if explicit:
        return explicit in ("1", "true", "yes", "on")
    hosts = _string_parameters(url).get("host") or os.environ.get("PGHOST") or ""
    return any(host.split(".")[0].endswith("-pooler") for host in hosts.split(","))
