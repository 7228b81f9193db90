"""`kehoach inbound`'s IMAP reader over TLS, against a real Dovecot (tests/support/dovecot.py)
serving IMAPS (implicit TLS, as on 993) and STARTTLS (as on 143) with a certificate made for the
test: the reader verifies the server against the CA it is configured with (KEHOACH_IMAP_CA_FILE)
and applies a reply, delivered twice, exactly once; a server whose certificate it does not trust
(another CA, or the system's CAs) is refused before the password is sent, with an error under
kehoach's base, and nothing changes: the reply stays unread, no decision, no row, no email.
The reader runs as `kehoach inbound` runs it (`service.inbound.role.serve` with the handler of
`service.inbound.make_handler`), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import re
import uuid

import pytest
from pydantic import SecretStr

from approvals.config import ImapTls, Settings
from approvals.errors import KehoachError
from notifications.models import ReplyHandling
from service.inbound import make_handler
from service.inbound.imap_client import ImapUnavailable, ImapUntrusted, connect, encode_folder
from service.inbound.role import check_imap, serve
from tests.notifications.reply_mail import PLAN, Mailroom, message_id_of, reply
from tests.notifications.tls import make_certificates
from tests.service.test_inbound_imap import folder_until, until
from tests.support.dovecot import PASSWORD, USER

MODES = ["tls", "starttls"]
_TLS_LOGIN = re.compile(r"imap-login: Info: Login: user=<[^>]+>, .*\bTLS\b")


def port_of(dovecot, mode: str) -> int:
    return dovecot.tls_port if mode == "tls" else dovecot.port


def tls_logins(dovecot) -> int:
    """How many logins Dovecot logged over TLS (the tests' own client logs in in plaintext)."""
    return len(_TLS_LOGIN.findall((dovecot.home / "dovecot.log").read_text()))


@pytest.fixture
def folders(dovecot):
    """(source, done) folders of this test's own, the source created."""
    n = uuid.uuid4().hex[:8]
    source, done = f"Thư trả lời TLS {n}", f"Đã xử lý TLS {n}"
    imap = dovecot.client()
    try:
        assert imap.create(f'"{encode_folder(source)}"')[0] == "OK"
    finally:
        imap.logout()
    return source, done


def inbound_settings(mailroom: Mailroom, dovecot, folders, *, mode: str, ca_file) -> Settings:
    return mailroom.settings.model_copy(
        update={
            "imap_host": "127.0.0.1",
            "imap_port": port_of(dovecot, mode),
            "imap_tls": ImapTls(mode),
            "imap_ca_file": ca_file,
            "imap_user": USER,
            "imap_password": SecretStr(PASSWORD),
            "imap_folder": folders[0],
            "imap_done_folder": folders[1],
            "imap_timeout": 5.0,
            "imap_poll_interval": 600.0,  # only IDLE brings a message in time
            "inbound_alert_after": 0.001,  # the first failure to connect is an outage to tell of
        }
    )


class Inbound:
    """`kehoach inbound --imap` in this process, until the block ends; `outages` are what it told."""

    def __init__(self, mailroom: Mailroom, settings: Settings):
        self.handle = make_handler(settings, mailroom.db, PLAN, mailroom.emails)
        self.settings, self.stop, self.outages = settings, asyncio.Event(), []

    async def _tell(self, why: str) -> None:
        self.outages.append(why)

    async def __aenter__(self):
        self.task = asyncio.create_task(
            serve(self.settings, self.handle, imap=True, lmtp=False, stop=self.stop, on_outage=self._tell)
        )
        return self

    async def __aexit__(self, *exc):
        self.stop.set()
        await asyncio.wait_for(self.task, 15)


@pytest.mark.parametrize("mode", MODES)
async def test_the_connection_is_tls_and_the_server_s_certificate_verified_against_the_ca(dovecot, mode):
    connection = await connect("127.0.0.1", port_of(dovecot, mode), tls=mode, timeout=5, ca_file=str(dovecot.ca_file))
    try:
        tls = connection.writer.get_extra_info("ssl_object")
        assert tls is not None and tls.version() in {"TLSv1.2", "TLSv1.3"}
        assert dict(item[0] for item in tls.getpeercert()["subject"])["commonName"] == "127.0.0.1"
        await connection.login(USER, PASSWORD)
        assert "IDLE" in connection.capabilities and "STARTTLS" not in connection.capabilities
    finally:
        await connection.logout()


@pytest.mark.parametrize("mode", MODES)
async def test_a_reply_read_over_tls_is_applied_once_however_often_it_is_delivered(mailroom, dovecot, folders, mode):
    request = await mailroom.open("dic_direction")
    asked = await mailroom.request_email(request, "dcst_director")
    official = PLAN.official("dcst_director")
    raw = reply(asked, "Đồng ý", sender=str(official.email), name=official.name)
    settings = inbound_settings(mailroom, dovecot, folders, mode=mode, ca_file=dovecot.ca_file)
    logins = tls_logins(dovecot)

    async with Inbound(mailroom, settings) as inbound:
        for _ in range(2):  # the province's MX delivered it twice
            await asyncio.to_thread(dovecot.append, raw, encode_folder(folders[0]))
        await folder_until(dovecot, folders[1], 2)
    assert inbound.outages == []
    assert tls_logins(dovecot) > logins  # the reader logged in over TLS (plaintext logins are not counted)
    assert await asyncio.to_thread(dovecot.messages, encode_folder(folders[0])) == []

    [decision] = await mailroom.decisions(request.id)
    assert (decision.official_id, decision.outcome) == ("dcst_director", "approve")
    [audited] = await mailroom.audit(request.id)
    assert audited.data["channel"] == "email reply" and audited.data["message_id"] == message_id_of(raw)
    [row] = await mailroom.inbound_of(message_id_of(raw))
    assert row.outcome == ReplyHandling.applied.value
    sent = await mailroom.deliver()
    assert [kind for kind, received in sent if kind == "receipt"] == ["receipt"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("trusting", ["another CA", "the system's CAs"])
async def test_a_server_whose_certificate_is_not_trusted_is_refused_and_nothing_changes(
    mailroom, dovecot, folders, mode, trusting, tmp_path
):
    other_ca = make_certificates(tmp_path)[0] if trusting == "another CA" else None
    request = await mailroom.open("dic_direction")
    asked = await mailroom.request_email(request, "dcst_director")
    official = PLAN.official("dcst_director")
    raw = reply(asked, "Đồng ý", sender=str(official.email), name=official.name)
    await asyncio.to_thread(dovecot.append, raw, encode_folder(folders[0]))
    settings = inbound_settings(mailroom, dovecot, folders, mode=mode, ca_file=other_ca)
    kinds, logins = await mailroom.outbox_kinds(), tls_logins(dovecot)

    with pytest.raises(ImapUntrusted) as refused:
        await connect("127.0.0.1", port_of(dovecot, mode), tls=mode, timeout=5, ca_file=settings.imap_ca_file)
    assert isinstance(refused.value, ImapUnavailable) and isinstance(refused.value, KehoachError)
    said = str(refused.value)
    assert said.startswith(f"the IMAP server 127.0.0.1:{port_of(dovecot, mode)} is not trusted")
    assert (str(other_ca) if other_ca else "KEHOACH_IMAP_CA_FILE") in said
    assert await check_imap(settings) == (False, said)

    async with Inbound(mailroom, settings) as inbound:
        await until(lambda: len(inbound.outages) >= 1, what="the outage")
    assert "is not trusted" in inbound.outages[0]

    [(_, flags, left)] = await asyncio.to_thread(dovecot.messages, encode_folder(folders[0]))
    assert left.replace(b"\r\n", b"\n") == raw.replace(b"\r\n", b"\n") and "\\Seen" not in flags
    assert await asyncio.to_thread(dovecot.messages, encode_folder(folders[1])) == []
    assert tls_logins(dovecot) == logins  # the password was never sent
    assert await mailroom.decisions(request.id) == [] and await mailroom.inbound_of(message_id_of(raw)) == []
    assert await mailroom.outbox_kinds() == kinds
