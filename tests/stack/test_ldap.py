"""The stack's LDAP server (ingestion/stack/ldap.py): a real slapd, checked with LDAP simple binds sent over a socket
(the same bind the Thrift server makes for every login)."""

from __future__ import annotations

import socket
import stat

import pytest
from ports import free_port_block

from ingestion.settings import Settings
from ingestion.stack.ldap import ANALYSTS, ENGINEERS, LdapServer, password_file, user_dn
from ingestion.stack.process import StackError

pytestmark = pytest.mark.integration

SUCCESS, INAPPROPRIATE_AUTHENTICATION, INVALID_CREDENTIALS, UNWILLING = 0, 48, 49, 53


def _ber(tag: int, content: bytes) -> bytes:
    length = len(content)
    encoded = bytes([length]) if length < 0x80 else bytes([0x82]) + length.to_bytes(2, "big")
    return bytes([tag]) + encoded + content


def bind(server: LdapServer, dn: str, password: str) -> int:
    """The result code of an LDAPv3 simple bind (RFC 4511 BindRequest, message id 1)."""
    request = _ber(0x02, b"\x03") + _ber(0x04, dn.encode()) + _ber(0x80, password.encode())
    message = _ber(0x30, _ber(0x02, b"\x01") + _ber(0x60, request))
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as connection:
        connection.sendall(message)
        response = connection.recv(4096)
    # SEQUENCE, message id, BindResponse [APPLICATION 1] { resultCode ENUMERATED, ... }
    bind_response = response.index(b"\x61")
    code_tag = response.index(b"\x0a", bind_response)
    return response[code_tag + 2]


@pytest.fixture
def ldap(tmp_path):
    settings = Settings(data_dir=tmp_path, ldap_port=free_port_block(1, 22000, 22099, "the LDAP test"))
    server = LdapServer(settings)
    server.start()
    yield server
    server.stop()


def _password(server: LdapServer, group: str, user: str) -> str:
    return password_file(server.settings, group, user).read_text().strip()


def test_each_user_binds_with_its_own_password_in_its_own_group_only(ldap):
    status = ldap.status()
    assert (status.running, status.healthy, status.users) == (True, True, ("analysts/analyst", "engineers/adx"))
    for group, user in ((ENGINEERS, "adx"), (ANALYSTS, "analyst")):
        assert stat.S_IMODE(password_file(ldap.settings, group, user).stat().st_mode) == 0o600
    analyst, adx = _password(ldap, ANALYSTS, "analyst"), _password(ldap, ENGINEERS, "adx")
    assert analyst != adx

    assert bind(ldap, user_dn("analyst", ANALYSTS), analyst) == SUCCESS  # the control
    assert bind(ldap, user_dn("adx", ENGINEERS), adx) == SUCCESS
    assert bind(ldap, user_dn("analyst", ENGINEERS), analyst) == INVALID_CREDENTIALS  # not an engineer
    assert bind(ldap, user_dn("analyst", ANALYSTS), analyst + "x") == INVALID_CREDENTIALS
    assert bind(ldap, user_dn("analyst", ANALYSTS), adx) == INVALID_CREDENTIALS
    assert bind(ldap, user_dn("nobody", ANALYSTS), analyst) == INVALID_CREDENTIALS
    assert bind(ldap, "", "") == INAPPROPRIATE_AUTHENTICATION  # anonymous
    assert bind(ldap, user_dn("analyst", ANALYSTS), "") == UNWILLING  # a name without a password


def test_the_password_files_are_the_users_and_hashes_stay_on_the_server(ldap):
    ldif = ldap.ldif_file.read_text()
    assert stat.S_IMODE(ldap.ldif_file.stat().st_mode) == 0o600
    assert ldif.count("userPassword: {CRYPT}$6$rounds=50000$") == 2  # salted SHA-512 crypt
    assert _password(ldap, ANALYSTS, "analyst") not in ldif

    old_password = _password(ldap, ANALYSTS, "analyst")
    password_file(ldap.settings, ANALYSTS, "analyst").unlink()
    password_file(ldap.settings, ANALYSTS, "maria").write_text("a-password-for-maria\n")  # pragma: allowlist secret
    ldap.stop()
    ldap.start()
    assert ldap.status().users == ("analysts/analyst", "analysts/maria", "engineers/adx")
    assert bind(ldap, user_dn("maria", ANALYSTS), "a-password-for-maria") == SUCCESS  # pragma: allowlist secret
    assert bind(ldap, user_dn("analyst", ANALYSTS), old_password) == INVALID_CREDENTIALS  # a new one was made

    # A badly named file beside a running server: it still serves the users it loaded, and its status names the file.
    bad_file = ldap.settings.sql_users_dir / ANALYSTS / "cn=admin.password"
    bad_file.write_text("x\n")
    try:
        status = ldap.status()
    finally:
        bad_file.unlink()
    assert status.healthy and "cn=admin" in status.detail and "user names must match" in status.detail


def test_a_password_file_that_is_no_user_name_is_refused(tmp_path):
    settings = Settings(data_dir=tmp_path, ldap_port=free_port_block(1, 22000, 22099, "the LDAP test"))
    (settings.sql_users_dir / ANALYSTS).mkdir(parents=True)
    (settings.sql_users_dir / ANALYSTS / "cn=admin.password").write_text("x\n")
    with pytest.raises(StackError, match="user names must match"):
        LdapServer(settings).start()
    (settings.sql_users_dir / ANALYSTS / "cn=admin.password").unlink()
    (settings.sql_users_dir / ANALYSTS / "adx.password").write_text("x\n")  # the engineer, also as an analyst
    with pytest.raises(StackError, match="in both engineers/ and analysts/"):
        LdapServer(settings).start()
