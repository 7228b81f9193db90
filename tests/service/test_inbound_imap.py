"""The IMAP reader against a real Dovecot (tests/support/dovecot.py): a reply that arrives while it
IDLEs is handed over once and filed; one whose handler raises stays unseen and comes again; two
readers on one folder hand every message over and file it; a claim left by
a reader that stopped is released; the server stopped and started again, the reader goes on.
Each test reads a folder of its own (with a Vietnamese name, in modified UTF-7 on the wire)."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid

import pytest

from service.inbound.imap import ImapConfig, ImapReader
from service.inbound.imap_client import connect, encode_folder
from tests.support.dovecot import PASSWORD, USER

DOMAIN = "reply.lang-son.example"
TOKEN = "abcdefghijklmnopqrstuvwxyz234567"
_numbers = itertools.count(1)


def reply(n: int) -> tuple[str, bytes]:
    message_id = f"<reply-{n}-{uuid.uuid4().hex[:8]}@official.example>"
    raw = (
        f"From: Giám đốc <giamdoc@sokhcn.langson.gov.vn>\r\nTo: duyet+{TOKEN}@{DOMAIN}\r\n"
        f"Subject: Re: Đề nghị duyệt\r\nMessage-ID: {message_id}\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nĐồng ý\r\n"
    ).encode()
    return message_id, raw


def _message_id(raw: bytes) -> str:
    return next(line for line in raw.decode().splitlines() if line.startswith("Message-ID:"))[12:]


class Recorder:
    """The handler: records each message's Message-ID and recipient; `fail` makes calls raise."""

    def __init__(self):
        self.calls: list[tuple[str, str]] = []
        self.fail = 0  # how many of the next calls raise

    async def __call__(self, raw: bytes, recipient: str) -> None:
        message_id = _message_id(raw)
        self.calls.append((message_id, recipient))
        if self.fail:
            self.fail -= 1
            raise RuntimeError("cannot apply the reply now")


@pytest.fixture
def folders(dovecot):
    """(source, done) folder names of this test's own, the source created."""
    n = next(_numbers)
    source, done = f"Thư trả lời {n}", f"Đã xử lý {n}"
    imap = dovecot.client()
    try:
        assert imap.create(f'"{encode_folder(source)}"')[0] == "OK"
    finally:
        imap.logout()
    return source, done


def config(dovecot, folders, **overrides) -> ImapConfig:
    values = dict(
        host="127.0.0.1",
        port=dovecot.port,
        tls="none",
        user=USER,
        password=PASSWORD,
        folder=folders[0],
        done_folder=folders[1],
        timeout=5.0,
        poll_interval=600.0,  # nothing is polled: only IDLE brings a message in time
        reply_domain=DOMAIN,
        backoff_base=0.05,
        backoff_max=0.5,
    )
    return ImapConfig(**{**values, **overrides})


async def until(condition, timeout: float = 20.0, what: str = "the condition") -> None:
    """Wait, looking often, until `condition()` holds (the reader's work is in this loop)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not come within {timeout} s")
        await asyncio.sleep(0.02)


async def folder_until(dovecot, folder: str, count: int, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while True:
        found = await asyncio.to_thread(dovecot.messages, encode_folder(folder))
        if len(found) == count:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{folder} holds {len(found)} messages, not {count}")
        await asyncio.sleep(0.05)


class Running:
    def __init__(self, *readers: ImapReader):
        self.readers, self.stop = readers, asyncio.Event()

    async def __aenter__(self):
        self.tasks = [asyncio.create_task(reader.run(self.stop)) for reader in self.readers]
        return self

    async def __aexit__(self, *exc):
        self.stop.set()
        await asyncio.wait_for(asyncio.gather(*self.tasks), 10)


def test_dovecot_offers_what_the_reader_uses(dovecot):
    assert {"IDLE", "MOVE", "CONDSTORE", "UIDPLUS"} <= dovecot.capabilities()


async def test_a_reply_arriving_while_the_reader_idles_is_handed_over_once_and_filed(dovecot, folders):
    handler = Recorder()
    reader = ImapReader(config(dovecot, folders), handler)
    async with Running(reader):
        await until(lambda: reader.stats["passes"] == 1, what="the first pass")
        message_id, raw = reply(1)
        await asyncio.to_thread(dovecot.append, raw, encode_folder(folders[0]))
        filed = await folder_until(dovecot, folders[1], 1)
    assert handler.calls == [(message_id, f"duyet+{TOKEN}@{DOMAIN}")]
    assert filed[0][2] == raw and "\\Seen" in filed[0][1]
    assert await asyncio.to_thread(dovecot.messages, encode_folder(folders[0])) == []
    assert reader.stats["passes"] == 2  # woken by IDLE once (the poll interval is 10 minutes)


async def test_a_reply_whose_handler_raises_stays_unseen_and_comes_again(dovecot, folders):
    handler = Recorder()
    handler.fail = 1
    first_id, first = reply(1)
    await asyncio.to_thread(dovecot.append, first, encode_folder(folders[0]))
    reader = ImapReader(config(dovecot, folders), handler)
    async with Running(reader):
        await until(lambda: reader.stats["failed"] == 1, what="the failure")
        left = await asyncio.to_thread(dovecot.messages, encode_folder(folders[0]))
        assert [(flags, raw) for _, flags, raw in left] == [(set(), first)]  # unseen, not filed
        # The next pass (here woken by the next arrival) hands it over again.
        second_id, second = reply(2)
        await asyncio.to_thread(dovecot.append, second, encode_folder(folders[0]))
        filed = await folder_until(dovecot, folders[1], 2)
    assert [call[0] for call in handler.calls] == [first_id, first_id, second_id]
    assert [raw for _, _, raw in filed] == [first, second]


async def test_two_readers_on_one_folder_hand_every_reply_over_and_file_it(dovecot, folders):
    """At least once each, not exactly once: Dovecot answers OK to two conditional stores that
    arrive together (see service/inbound/imap.py), so the handler's dedupe on Message-ID decides
    (tests/notifications/test_replies_two_readers.py shows it with the real handler)."""
    handler = Recorder()
    readers = [ImapReader(config(dovecot, folders), handler) for _ in range(2)]
    sent = []
    async with Running(*readers):
        await until(lambda: all(r.stats["passes"] >= 1 for r in readers), what="both readers' first pass")
        for n in range(12):
            message_id, raw = reply(n)
            sent.append(message_id)
            await asyncio.to_thread(dovecot.append, raw, encode_folder(folders[0]))
        await folder_until(dovecot, folders[0], 0)
        filed = await asyncio.to_thread(dovecot.messages, encode_folder(folders[1]))
    assert {call[0] for call in handler.calls} == set(sent)
    assert {_message_id(raw) for _, _, raw in filed} == set(sent)
    assert sum(r.stats["handled"] for r in readers) == len(handler.calls)
    assert [r.stats["connects"] for r in readers] == [1, 1]  # a message filed by the other is no outage


async def test_a_message_the_other_reader_filed_first_is_no_outage(dovecot, folders):
    message_id, raw = reply(1)
    other = dovecot.client()

    async def handled_while_the_other_reader_files_it(raw: bytes, recipient: str) -> None:
        await handler(raw, recipient)
        await asyncio.to_thread(file_it)

    def file_it() -> None:  # as the other reader does, between this one's claim and its move
        assert other.select(f'"{encode_folder(folders[0])}"')[0] == "OK"
        assert other.uid("MOVE", "1:*", f'"{encode_folder(folders[1])}"')[0] == "OK"
        assert other.response("COPYUID")[1] != [None]  # it moved the message

    handler = Recorder()
    reader = ImapReader(config(dovecot, folders), handled_while_the_other_reader_files_it)
    try:
        async with Running(reader):
            await asyncio.to_thread(dovecot.append, raw, encode_folder(folders[0]))
            await until(lambda: reader.stats["filed_elsewhere"] == 1, what="the move that found it gone")
            filed = await folder_until(dovecot, folders[1], 1)
    finally:
        other.logout()
    assert handler.calls == [(message_id, f"duyet+{TOKEN}@{DOMAIN}")]
    assert _message_id(filed[0][2]) == message_id
    assert (reader.stats["handled"], reader.stats["connects"]) == (1, 1)


async def test_a_claim_left_by_a_reader_that_stopped_is_released_and_handled(dovecot, folders):
    message_id, raw = reply(1)
    imap = dovecot.client()
    try:  # seen in the folder: as a reader leaves a message it claimed and then died
        assert imap.append(f'"{encode_folder(folders[0])}"', "(\\Seen)", None, raw)[0] == "OK"
    finally:
        imap.logout()
    handler = Recorder()
    reader = ImapReader(config(dovecot, folders, claim_seconds=0.2, poll_interval=0.1), handler)
    async with Running(reader):
        await folder_until(dovecot, folders[1], 1)
    assert handler.calls == [(message_id, f"duyet+{TOKEN}@{DOMAIN}")]
    assert reader.stats["released"] == 1


async def test_the_reader_reconnects_when_the_server_comes_back(dovecot, folders):
    handler = Recorder()
    reader = ImapReader(config(dovecot, folders), handler)
    async with Running(reader):
        await until(lambda: reader.stats["passes"] == 1, what="the first pass")
        await asyncio.to_thread(dovecot.stop)
        try:
            message_id, raw = reply(1)
        finally:
            await asyncio.to_thread(dovecot.start)
        await asyncio.to_thread(dovecot.append, raw, encode_folder(folders[0]))
        await folder_until(dovecot, folders[1], 1)
    assert handler.calls == [(message_id, f"duyet+{TOKEN}@{DOMAIN}")]
    assert reader.stats["connects"] >= 2


async def test_a_server_without_move_gets_copy_delete_expunge_and_a_message_gone_is_told(dovecot, folders):
    first, second = reply(1), reply(2)
    for _, raw in (first, second):
        await asyncio.to_thread(dovecot.append, raw, encode_folder(folders[0]))
    imap = await connect("127.0.0.1", dovecot.port, tls="none", timeout=5)
    other = dovecot.client()
    try:
        await imap.login(USER, PASSWORD)
        await imap.ensure_folder(folders[1])
        await imap.select(folders[0])
        imap.capabilities.discard("MOVE")  # as a server that offers UIDPLUS but not MOVE
        [(uid_1, _, _), (uid_2, _, _)] = await imap.flags()
        assert await imap.move(uid_1, folders[1]) is True
        assert other.select(f'"{encode_folder(folders[0])}"')[0] == "OK"  # another session files the second
        assert other.uid("MOVE", str(uid_2), f'"{encode_folder(folders[1])}"')[0] == "OK"
        assert await imap.move(uid_2, folders[1]) is False
    finally:
        other.logout()
        await imap.logout()
    assert await asyncio.to_thread(dovecot.messages, encode_folder(folders[0])) == []
    filed = await asyncio.to_thread(dovecot.messages, encode_folder(folders[1]))
    assert sorted(_message_id(raw) for _, _, raw in filed) == sorted([first[0], second[0]])  # each once
