"""The little of IMAP4rev1 (RFC 3501) the reply reader needs, over asyncio streams, with a timeout
on connecting and on every command: a server that is down, slow or hangs raises `ImapUnavailable`
and the reader reconnects. Extensions used where the server's CAPABILITY offers them: IDLE (RFC
2177), MOVE (RFC 6851), UIDPLUS (RFC 4315, `UID EXPUNGE`), CONDSTORE (RFC 7162, the claim's
compare-and-set). Folder names go over the wire in modified UTF-7 (RFC 3501 5.1.3).

TLS, implicit (`tls`, port 993) or by STARTTLS (`starttls`, port 143; RFC 3501 6.2.1, RFC 8314),
verifies the server's certificate and its name (the host as configured, a name or an address)
against the system's CAs, or against `ca_file` alone when one is given (a province's own CA). A
certificate that does not verify raises `ImapUntrusted` before a password is sent.
"""

from __future__ import annotations

import asyncio
import base64
import re
import ssl
from dataclasses import dataclass, field

from approvals.errors import Unavailable

_LITERAL = re.compile(rb"\{(\d+)\+?\}$")
_TAGGED = re.compile(rb"^(K\d+) (OK|NO|BAD)(?: \[([^\]]*)\])?(.*)$", re.IGNORECASE)
_ATTRS = {
    "uid": re.compile(rb"\bUID (\d+)", re.IGNORECASE),
    "flags": re.compile(rb"\bFLAGS \(([^)]*)\)", re.IGNORECASE),
    "modseq": re.compile(rb"\bMODSEQ \((\d+)\)", re.IGNORECASE),
}
_GONE = {"EXPUNGEISSUED", "NONEXISTENT"}  # RFC 5530: the message was expunged by another session
LINE_LIMIT = 1024 * 1024  # a SEARCH or FETCH answer over a large folder is one long line


class ImapUnavailable(Unavailable):
    """The IMAP server cannot be used now (refused, dropped, timed out, or answered what IMAP does
    not allow): the reader reconnects after a pause."""


class ImapUntrusted(ImapUnavailable):
    """The server's certificate did not verify (an unknown CA, another name, expired): nothing was
    sent to it. The reader tries again after a pause, as for any outage (a renewed certificate
    ends it); the coordinators are told if it lasts."""


class ImapRefused(ImapUnavailable):
    """A command answered NO or BAD; `code` is its response code (`MODIFIED 7`, `ALREADYEXISTS`)."""

    def __init__(self, command: str, code: str, text: str):
        super().__init__(f"{command}: [{code}] {text}".replace("[] ", ""))
        self.code = code


def encode_folder(name: str) -> str:
    """A folder name in modified UTF-7: printable ASCII as itself ('&' as '&-'), the rest as
    '&' + base64 of its UTF-16BE, ',' for '/', + '-'."""
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            data = "".join(pending).encode("utf-16-be")
            out.append("&" + base64.b64encode(data).decode().rstrip("=").replace("/", ",") + "-")
            pending.clear()

    for char in name:
        if 0x20 <= ord(char) <= 0x7E:
            flush()
            out.append("&-" if char == "&" else char)
        else:
            pending.append(char)
    flush()
    return "".join(out)


def decode_folder(name: str) -> str:
    def one(match: re.Match[str]) -> str:
        chunk = match.group(1)
        if not chunk:
            return "&"
        data = chunk.replace(",", "/")
        return base64.b64decode(data + "=" * (-len(data) % 4)).decode("utf-16-be")

    return re.sub(r"&([A-Za-z0-9+,]*)-", one, name)


@dataclass
class Response:
    """One untagged response: its text (literals cut out, their `{n}` markers kept) and literals."""

    text: bytes
    literals: list[bytes] = field(default_factory=list)

    def attr(self, name: str) -> bytes | None:
        found = _ATTRS[name].search(self.text)
        return found.group(1) if found else None


def _quoted(value: str) -> bytes:
    return b'"' + value.replace("\\", "\\\\").replace('"', '\\"').encode() + b'"'


class Literal(bytes):
    """An argument sent as a synchronizing literal (a password that is not plain ASCII)."""


def _string(value: str) -> bytes | Literal:
    if value.isascii() and value.isprintable():
        return _quoted(value)
    return Literal(value.encode())


class ImapConnection:
    """One logged-in connection; make it with `connect`, end it with `logout` (or `close`)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, timeout: float):
        self.reader, self.writer, self.timeout = reader, writer, timeout
        self.capabilities: set[str] = set()
        self.last_code = ""  # the response code of the last command's tagged OK
        self.arrived = False  # an EXISTS came with a command's answer (reset by the reader)
        self._tag = 0

    # ------------------------------------------------------------------ the wire

    async def _line(self, timeout: float | None = None) -> bytes:
        try:
            line = await asyncio.wait_for(self.reader.readuntil(b"\r\n"), timeout or self.timeout)
        except TimeoutError:
            raise ImapUnavailable("the IMAP server did not answer in time") from None
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError) as exc:
            raise ImapUnavailable(f"the IMAP connection failed: {type(exc).__name__}") from exc
        return line[:-2]

    async def _response(self, timeout: float | None = None) -> Response:
        line = await self._line(timeout)
        response = Response(line)
        while (literal := _LITERAL.search(line)) is not None:
            size = int(literal.group(1))
            try:
                data = await asyncio.wait_for(self.reader.readexactly(size), self.timeout)
            except TimeoutError:
                raise ImapUnavailable("the IMAP server did not answer in time") from None
            except (asyncio.IncompleteReadError, OSError) as exc:
                raise ImapUnavailable(f"the IMAP connection failed: {type(exc).__name__}") from exc
            response.literals.append(data)
            line = await self._line()
            response.text += b" " + line
        return response

    async def _send(self, data: bytes) -> None:
        try:
            self.writer.write(data)
            await asyncio.wait_for(self.writer.drain(), self.timeout)
        except TimeoutError:
            raise ImapUnavailable("the IMAP server did not take the command in time") from None
        except OSError as exc:
            raise ImapUnavailable(f"the IMAP connection failed: {type(exc).__name__}") from exc

    async def _start(self, *args: bytes | str) -> bytes:
        """Send a command (waiting on the server's '+' before each literal); its tag."""
        self._tag += 1
        tag = f"K{self._tag}".encode()
        line = tag
        for arg in args:
            part = arg.encode() if isinstance(arg, str) else arg
            if isinstance(arg, Literal):
                await self._send(line + b" {%d}\r\n" % len(part))
                if not (await self._line()).startswith(b"+"):
                    raise ImapUnavailable("the IMAP server refused a literal")
                line = part
            else:
                line += b" " + part
        await self._send(line + b"\r\n")
        return tag

    async def _finish(self, tag: bytes, name: str) -> list[Response]:
        untagged: list[Response] = []
        while True:
            response = await self._response()
            done = _TAGGED.match(response.text)
            if done and done.group(1) == tag:
                status, code, text = done.group(2).upper(), done.group(3) or b"", done.group(4).strip()
                if status != b"OK":
                    raise ImapRefused(name, code.decode(errors="replace"), text.decode(errors="replace"))
                self.last_code = code.decode(errors="replace")
                self._absorb(code)
                return untagged
            if response.text.startswith(b"* BYE"):
                said = response.text.decode(errors="replace")
                raise ImapUnavailable(f"the IMAP server closed the connection: {said}")
            untagged.append(response)
            if response.text.upper().endswith(b" EXISTS"):
                self.arrived = True
            if response.text.upper().startswith(b"* CAPABILITY "):
                self._absorb(response.text[2:])

    def _absorb(self, code: bytes) -> None:
        if code.upper().startswith(b"CAPABILITY "):
            self.capabilities = {c.upper() for c in code.decode(errors="replace").split()[1:]}

    async def command(self, *args: bytes | str) -> list[Response]:
        """Run one command; its untagged responses, or ImapRefused on NO or BAD."""
        name = args[0] if isinstance(args[0], str) else args[0].decode()
        return await self._finish(await self._start(*args), name)

    # ------------------------------------------------------------------ the session

    async def login(self, user: str, password: str) -> None:
        await self.command("LOGIN", _string(user), _string(password))
        await self.command("CAPABILITY")  # the capabilities after login are those that count

    def offers(self, capability: str) -> bool:
        return capability.upper() in self.capabilities

    async def ensure_folder(self, name: str) -> None:
        """Create the folder unless it exists (another reader may create it at the same time)."""
        wire = _quoted(encode_folder(name))
        if await self.command("LIST", b'""', wire):
            return
        try:
            await self.command("CREATE", wire)
        except ImapRefused as exc:
            if exc.code.upper() != "ALREADYEXISTS" and not await self.command("LIST", b'""', wire):
                raise

    async def select(self, name: str) -> None:
        args: list[bytes | str] = ["SELECT", _quoted(encode_folder(name))]
        if self.offers("CONDSTORE"):
            args.append("(CONDSTORE)")
        await self.command(*args)

    async def flags(self) -> list[tuple[int, set[str], int | None]]:
        """(UID, flags, mod-sequence where CONDSTORE is on) of every message in the folder, by UID."""
        items = "(UID FLAGS MODSEQ)" if self.offers("CONDSTORE") else "(UID FLAGS)"
        found = []
        for response in await self.command("UID", "FETCH", "1:*", items):
            uid, flags, modseq = response.attr("uid"), response.attr("flags"), response.attr("modseq")
            if uid is not None and flags is not None:
                found.append((int(uid), set(flags.decode().split()), int(modseq) if modseq else None))
        return sorted(found)

    async def store(self, uid: int, change: str, flags: str, *, unchanged_since: int | None = None) -> bool:
        """`UID STORE` with .SILENT; with `unchanged_since` (CONDSTORE) only if the message's
        mod-sequence is still that one: False when it was not (the answer names it MODIFIED)."""
        args: list[bytes | str] = ["UID", "STORE", str(uid)]
        if unchanged_since is not None:
            args.append(f"(UNCHANGEDSINCE {unchanged_since})")
        await self.command(*args, f"{change}FLAGS.SILENT", f"({flags})")
        return not self.last_code.upper().startswith("MODIFIED")

    async def body(self, uid: int) -> bytes | None:
        """The message's bytes, leaving its flags alone; None when it is gone."""
        for response in await self.command("UID", "FETCH", str(uid), "(UID BODY.PEEK[])"):
            if response.attr("uid") == str(uid).encode() and response.literals:
                return response.literals[0]
        return None

    async def move(self, uid: int, folder: str) -> bool:
        """File the message into `folder`; False when it was no longer here to file: another
        session expunged it (NO [EXPUNGEISSUED], or an OK that names no COPYUID, RFC 4315)."""
        wire = _quoted(encode_folder(folder))
        verb = "MOVE" if self.offers("MOVE") else "COPY"
        try:
            untagged = await self.command("UID", verb, str(uid), wire)
        except ImapRefused as exc:
            if exc.code.upper().split(" ")[0] in _GONE:
                return False
            raise
        copied = self.last_code.upper().startswith("COPYUID") or any(
            r.text.upper().startswith(b"* OK [COPYUID ") for r in untagged
        )
        if verb == "MOVE":
            return copied or not self.offers("UIDPLUS")
        if not copied and not await self._present(uid):
            return False  # nothing was copied (a folder without sticky UIDs names no COPYUID either)
        await self.command("UID", "STORE", str(uid), "+FLAGS.SILENT", r"(\Deleted)")
        await self.command(*(["UID", "EXPUNGE", str(uid)] if self.offers("UIDPLUS") else ["EXPUNGE"]))
        return True

    async def _present(self, uid: int) -> bool:
        answers = await self.command("UID", "FETCH", str(uid), "(UID)")
        return any(response.attr("uid") == str(uid).encode() for response in answers)

    async def idle(self, seconds: float, stop: asyncio.Event) -> None:
        """IDLE until a message arrives (EXISTS), `seconds` pass or `stop` is set; then DONE."""
        tag = await self._start("IDLE")
        if not (await self._line()).startswith(b"+"):
            raise ImapUnavailable("the IMAP server refused IDLE")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        stopping = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set() and (left := deadline - loop.time()) > 0:
                reading = asyncio.ensure_future(self._line(timeout=left + self.timeout))
                done, _ = await asyncio.wait({reading, stopping}, timeout=left, return_when=asyncio.FIRST_COMPLETED)
                if reading not in done:
                    reading.cancel()  # readuntil keeps a partial line in the buffer for the next read
                    break
                if reading.result().upper().endswith(b" EXISTS"):
                    break
        finally:
            stopping.cancel()
        await self._send(b"DONE\r\n")
        await self._finish(tag, "IDLE")

    async def logout(self) -> None:
        try:
            await self.command("LOGOUT")
        except ImapUnavailable:
            pass  # the server ends the connection with BYE before the tagged OK: either is fine
        finally:
            self.close()

    def close(self) -> None:
        self.writer.close()


def tls_context(ca_file: str | None = None) -> ssl.SSLContext:
    """The client's TLS context: certificates and host names verified, against `ca_file` alone
    when given, else the system's CAs."""
    return ssl.create_default_context(cafile=ca_file or None)


def _untrusted(host: str, port: int, exc: ssl.SSLCertVerificationError, ca_file: str | None) -> ImapUntrusted:
    trusted = f"the CA in {ca_file}" if ca_file else "the system's CAs (KEHOACH_IMAP_CA_FILE names another CA)"
    why = exc.verify_message or exc.reason or str(exc)
    return ImapUntrusted(
        f"the IMAP server {host}:{port} is not trusted: its certificate did not verify against {trusted}: {why}"
    )


async def connect(host: str, port: int, *, tls: str, timeout: float, ca_file: str | None = None) -> ImapConnection:
    """Connected and greeted (STARTTLS done where asked, the server's certificate verified); not
    yet logged in."""
    context = tls_context(ca_file) if tls != "none" else None
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                host,
                port,
                ssl=context if tls == "tls" else None,
                server_hostname=host if tls == "tls" else None,
                ssl_handshake_timeout=timeout if tls == "tls" else None,
                limit=LINE_LIMIT,
            ),
            timeout,
        )
    except TimeoutError:
        raise ImapUnavailable(f"connecting to {host}:{port} timed out") from None
    except ssl.SSLCertVerificationError as exc:
        raise _untrusted(host, port, exc, ca_file) from exc
    except OSError as exc:
        raise ImapUnavailable(f"cannot connect to {host}:{port}: {type(exc).__name__}: {exc}") from exc
    connection = ImapConnection(reader, writer, timeout)
    try:
        greeting = await connection._line()
        if not greeting.upper().startswith(b"* OK"):
            raise ImapUnavailable(f"the IMAP server greeted with {greeting[:80].decode(errors='replace')!r}")
        connection._absorb(re.sub(rb"^\* OK \[([^\]]*)\].*", rb"\1", greeting, flags=re.IGNORECASE))
        if tls == "starttls":
            assert context is not None
            await _start_tls(connection, context, host, port, ca_file)
    except BaseException:
        connection.close()
        raise
    return connection


async def _start_tls(
    connection: ImapConnection, context: ssl.SSLContext, host: str, port: int, ca_file: str | None
) -> None:
    """STARTTLS, then TLS on the same connection. Nothing the server sent before TLS is believed
    afterwards: bytes already waiting after its OK (a response injected in plaintext) end the
    connection, and the capabilities are asked again (RFC 3501 6.2.1)."""
    await connection.command("STARTTLS")
    if getattr(connection.reader, "_buffer", b""):
        raise ImapUnavailable("the IMAP server sent data after its STARTTLS answer, before TLS: refused")
    try:
        await asyncio.wait_for(
            connection.writer.start_tls(context, server_hostname=host, ssl_handshake_timeout=connection.timeout),
            connection.timeout,
        )
    except ssl.SSLCertVerificationError as exc:
        raise _untrusted(host, port, exc, ca_file) from exc
    except (TimeoutError, OSError, ssl.SSLError) as exc:
        raise ImapUnavailable(f"STARTTLS with {host}:{port} failed: {type(exc).__name__}: {exc}") from exc
    connection.capabilities = set()
    await connection.command("CAPABILITY")
