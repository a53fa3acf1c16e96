"""The stack's directory of SQL users: a local OpenLDAP `slapd` (Debian's package) that the Spark Thrift Servers
check every login against (hive.server2.authentication=LDAP).

Its home folder is `<stack_dir>/ldap`:

    slapd.conf          written on every start
    users.ldif          the entries, written on every start (mode 0600: it holds the password hashes)
    data/               the database (mdb), loaded from users.ldif with slapadd on every start
    logs/slapd.log      slapd's log
    slapd.pid

The users are the password files of `settings.sql_users_dir` (mode 0600), in two groups:

    engineers/<name>.password   uid=<name>,ou=engineers,dc=adx,dc=local: may log in to the engineers' Thrift
                                server (dbt's thrift target, every database)
    analysts/<name>.password    uid=<name>,ou=analysts,dc=adx,dc=local: may log in to the analysts' Thrift server
                                (marts only)

Each entry holds the password's salted SHA-512 crypt hash. A Thrift server binds as uid=<user>,<its group's ou>,
so a login of the other group does not exist for it. Start creates the passwords of `adx` (an engineer: dbt and
the stack's own checks) and `analyst` when they are missing; to add or remove a user, add or remove a file and
restart the service. The directory has no manager account: it is built offline and only ever read. Anonymous
binds are refused, and nobody can read a password hash over LDAP.
"""

from __future__ import annotations

import re
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ingestion.secret_files import read_or_create, write_private
from ingestion.settings import Settings
from ingestion.stack.process import ManagedProcess, StackError, ensure_ports_free, port_open, wait_until

HOST = "127.0.0.1"
SLAPD = Path("/usr/sbin/slapd")
SLAPADD = Path("/usr/sbin/slapadd")
SLAPPASSWD = Path("/usr/sbin/slappasswd")
SCHEMA_DIR = Path("/etc/ldap/schema")
MODULE_DIR = Path("/usr/lib/ldap")
SUFFIX = "dc=adx,dc=local"
ENGINEERS, ANALYSTS = "engineers", "analysts"
GROUPS = (ENGINEERS, ANALYSTS)
DEFAULT_USERS = {ENGINEERS: "adx", ANALYSTS: "analyst"}
USER_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


def group_dn(group: str) -> str:
    return f"ou={group},{SUFFIX}"


def user_dn(name: str, group: str) -> str:
    return f"uid={name},{group_dn(group)}"


def password_file(settings: Settings, group: str, name: str) -> Path:
    return settings.sql_users_dir / group / f"{name}.password"


@dataclass(frozen=True)
class LdapStatus:
    running: bool
    pid: int | None
    address: str
    healthy: bool  # accepts connections
    users: tuple[str, ...] = ()  # group/name
    error: str | None = None

    name = "ldap"

    @property
    def detail(self) -> str:
        if self.error:
            return self.error
        return f"users: {', '.join(self.users)}" if self.users else "no users"


class LdapServer:
    name = "ldap"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.port = settings.ldap_port
        self.address = f"{HOST}:{self.port}"
        self.url = f"ldap://{self.address}"
        self.home = settings.stack_dir / "ldap"
        self.conf_file = self.home / "slapd.conf"
        self.ldif_file = self.home / "users.ldif"
        self.data_dir = self.home / "data"
        self.process = ManagedProcess(
            "the LDAP server",
            pid_file=self.home / "slapd.pid",
            marker=f"-f {self.conf_file}",
            log_files=[self.home / "logs" / "slapd.log"],
        )

    def start(self, timeout: float = 30.0) -> None:
        """Load the users into a new database and start slapd; a running server is left alone (restart it to
        load changed users)."""
        if self.process.pid() is not None:
            self.wait_until_healthy(timeout)
            return
        for binary in (SLAPD, SLAPADD, SLAPPASSWD):
            if not binary.is_file():
                raise StackError(f"{binary} is missing: run `make setup` (Debian's slapd package)")
        ensure_ports_free(HOST, {self.port: "ADX_LDAP_PORT"}, f"the LDAP server of {self.home}")
        for group, name in DEFAULT_USERS.items():
            read_or_create(password_file(self.settings, group, name), lambda: secrets.token_urlsafe(24))
        self.home.mkdir(parents=True, exist_ok=True)
        self.conf_file.write_text(self._slapd_conf())
        write_private(self.ldif_file, self._users_ldif())
        self._load_database()
        # -d 0: stay in the foreground (ManagedProcess tracks it), logging nothing but errors to its output.
        command = [str(SLAPD), "-d", "0", "-h", f"{self.url}/", "-f", str(self.conf_file)]
        self.process.spawn(command, cwd=self.home)
        try:
            self.wait_until_healthy(timeout)
        except StackError:
            self.stop(timeout=10)
            raise

    def stop(self, timeout: float = 30.0) -> bool:
        return self.process.stop(timeout)

    def pid(self) -> int | None:
        return self.process.pid()

    def status(self) -> LdapStatus:
        pid = self.process.pid()
        if pid is None:
            return LdapStatus(False, None, self.address, healthy=False, error="stopped")
        if not port_open(HOST, self.port):
            return LdapStatus(True, pid, self.address, healthy=False, error="its port is not open")
        try:
            users = tuple(f"{group}/{name}" for group, name in self.users())
        except StackError as error:
            # The running server still serves the users it loaded; only the next start refuses the files.
            return LdapStatus(True, pid, self.address, healthy=True, error=f"{error} (the next start refuses it)")
        return LdapStatus(True, pid, self.address, healthy=True, users=users)

    def wait_until_healthy(self, timeout: float = 30.0) -> None:
        def not_ready() -> str | None:
            return None if port_open(HOST, self.port) else "its port is not open yet"

        wait_until(not_ready, timeout=timeout, process=self.process, what="accepting connections")

    def users(self) -> list[tuple[str, str]]:
        """(group, name) of every password file, sorted. A file whose name is no valid user name, or a name in both
        groups, is an error."""
        folder = self.settings.sql_users_dir
        users = sorted(
            (group, path.name.removesuffix(".password"))
            for group in GROUPS
            for path in (folder / group).glob("*.password")
        )
        invalid = [f"{group}/{name}" for group, name in users if not USER_NAME.match(name)]
        if invalid:
            raise StackError(f"user names must match {USER_NAME.pattern}: rename {invalid} in {folder}")
        names = [name for _, name in users]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise StackError(f"{twice} are in both {ENGINEERS}/ and {ANALYSTS}/ of {folder}: keep each in one")
        return users

    # --- internals -------------------------------------------------------------------------------------------

    def _slapd_conf(self) -> str:
        schemas = "\n".join(f"include {SCHEMA_DIR / name}.schema" for name in ("core", "cosine", "inetorgperson"))
        return f"""# Written by ingestion/stack/ldap.py on every start; edit the settings, not this file.
{schemas}
pidfile {self.home / "slapd.run.pid"}
argsfile {self.home / "slapd.args"}
modulepath {MODULE_DIR}
moduleload back_mdb
disallow bind_anon
require authc
password-hash {{CRYPT}}

database mdb
maxsize 67108864
suffix "{SUFFIX}"
directory {self.data_dir}
index objectClass eq
index uid eq
# A user proves a password by binding; nobody reads a hash.
access to attrs=userPassword
    by anonymous auth
    by * none
access to *
    by users read
    by * none
"""

    def _users_ldif(self) -> str:
        entries = [f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: adx\no: AdvertiseX\n"]
        entries += [f"dn: {group_dn(group)}\nobjectClass: organizationalUnit\nou: {group}\n" for group in GROUPS]
        for group, name in self.users():
            password = password_file(self.settings, group, name).read_text().strip()
            entries.append(
                f"dn: {user_dn(name, group)}\nobjectClass: inetOrgPerson\nuid: {name}\ncn: {name}\nsn: {name}\n"
                f"userPassword: {_crypt_hash(password)}\n"
            )
        return "\n".join(entries)

    def _load_database(self) -> None:
        """A new database from users.ldif: the password files are the truth, so a removed user is gone."""
        for path in self.data_dir.glob("*"):
            path.unlink()
        self.data_dir.mkdir(exist_ok=True)
        command = [str(SLAPADD), "-f", str(self.conf_file), "-l", str(self.ldif_file)]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise StackError(f"slapadd could not load {self.ldif_file}:\n{result.stdout}{result.stderr}")


def _crypt_hash(password: str) -> str:
    """{CRYPT} with glibc's SHA-512 crypt and a random salt, made by slappasswd (the password goes on its stdin,
    never on a command line)."""
    result = subprocess.run(
        [str(SLAPPASSWD), "-h", "{CRYPT}", "-c", "$6$rounds=50000$%.16s", "-T", "/dev/stdin"],
        input=password,
        capture_output=True,
        text=True,
        check=False,
    )
    hashed = result.stdout.strip()
    if result.returncode != 0 or not hashed.startswith("{CRYPT}$6$"):
        raise StackError(f"slappasswd could not hash a password: {result.stderr.strip()}")
    return hashed
