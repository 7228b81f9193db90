"""One typed settings object for every kehoach process, read from `KEHOACH_*` variables."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from enum import Enum
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from approvals.tokens import valid_local_part

_DOMAIN = re.compile(r"^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+$")
PACKAGED_PLAN = Path(__file__).resolve().parent.parent / "plans" / "lang-son.yaml"
DEVELOPMENT_SECRET_FILE = "link-secret"


class Environment(str, Enum):
    development = "development"
    production = "production"


class SmtpTls(str, Enum):
    none = "none"
    starttls = "starttls"
    tls = "tls"


class ImapTls(str, Enum):
    none = "none"  # plaintext: a server on this machine only (the tests' Dovecot)
    starttls = "starttls"
    tls = "tls"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KEHOACH_", extra="ignore")

    environment: Environment = Field(
        Environment.development,
        description="`development` enables the local mail catcher's inbox page and a generated link secret.",
    )
    data_dir: Path = Field(
        Path("./kehoach-data"), description="Folder for the SQLite file, caught mail and local secrets."
    )
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL. Default: a SQLite file in the data folder. PostgreSQL: postgresql://user@host/db.",
    )
    plan_file: Path = Field(PACKAGED_PLAN, description="The plan file (agencies, officials, roles, stages).")
    public_base_url: str = Field("http://127.0.0.1:8765", description="Base URL put in email links.")
    web_host: str = Field("127.0.0.1", description="Address the web service listens on.")
    web_port: int = Field(8765, description="Port the web service listens on.")

    smtp_host: str = Field("127.0.0.1", description="SMTP server host.")
    smtp_port: int = Field(8025, description="SMTP server port (the local mail catcher listens here by default).")
    smtp_user: str | None = Field(None, description="SMTP user name, if the server requires authentication.")
    smtp_password: SecretStr | None = Field(None, description="SMTP password (environment only).")
    smtp_tls: SmtpTls = Field(SmtpTls.none, description="`none`, `starttls` or `tls` (implicit TLS).")
    smtp_timeout: float = Field(30.0, description="Seconds before an SMTP operation is abandoned and retried later.")
    mail_from: str = Field("kehoach@lang-son.example", description="Sender address of every email.")
    mail_from_name: str = Field("Kế hoạch truyền thông tỉnh Lạng Sơn", description="Sender display name.")
    local_hostname: str = Field("kehoach.local", description="Name given in EHLO (avoids a DNS lookup per connection).")
    smtp_pool_size: int = Field(
        4, ge=1, le=32, description="SMTP connections the dispatcher keeps open and uses at once."
    )
    dispatch_interval: float = Field(2.0, description="Seconds between outbox polls when idle.")
    dispatch_lease_seconds: float = Field(
        120.0,
        ge=10,
        description="How long a dispatcher holds the emails it claimed; one that dies leaves them to "
        "another after this (sent again with the same Message-ID).",
    )

    link_secret: SecretStr | None = Field(
        None,
        description="Key that derives link tokens and reply-address tokens. Generated and kept in the data folder "
        "in development; required in production.",
    )
    link_ttl_days: int = Field(60, description="Days an approval link stays valid.")
    queue_session_minutes: int = Field(
        30,
        gt=0,
        le=24 * 60,
        description="Minutes an official's queue session (made from a live link, no password) lasts.",
    )
    queue_link_hours: int = Field(
        24, gt=0, le=24 * 7, description="Hours the queue link of the daily digest stays valid after it is sent."
    )
    report_link_days: int = Field(
        30,
        gt=0,
        le=366,
        description="Days the download link of an issued report too large to attach stays valid after it is sent.",
    )
    digest_hour: int = Field(
        7,
        ge=0,
        le=23,
        description="From which hour of the plan's day the sweep sends each official's daily digest of open "
        "steps (once a day).",
    )
    digest: bool = Field(True, description="Whether the sweep sends the officials' daily digest of open steps.")
    signing_file: Path | None = Field(
        None,
        description="The signing file (YAML): how each director and each issuing agency signs the issued report, "
        "the trust roots and the timestamp authority (approvals/signing/signers.py). Required in production; in "
        "development, test certificates marked as such are made in the data folder.",
    )
    remote_signature_minutes: int = Field(
        15,
        gt=0,
        le=24 * 60,
        description="Minutes a director who signs on the phone (remote signing) has to confirm the issued report's "
        "signature before the request lapses and the coordinators are told.",
    )
    reply_domain: str = Field(
        "",
        description="Domain of the reply addresses: each email that asks for a decision gets its own Reply-To, "
        "<reply_local_part>+<token>@<reply_domain>, valid as long as its link. Empty: replies are off "
        "(no Reply-To).",
    )
    reply_local_part: str = Field(
        "duyet",
        description="Local part the reply addresses start with (lowercase letters, digits, '.', '_', '-'; "
        "at most 31 characters, so that it, a '+' and the token fit the 64 octets of a local part).",
    )
    reply_trusted_authserv_ids: str = Field(
        "",
        description="Comma-separated authserv-ids of the receiving hosts (the province's MX) whose "
        "Authentication-Results header a reply's DKIM or DMARC pass is read from. Empty: no reply passes.",
    )
    mail_catcher_imap_port: int = Field(
        8143,
        ge=0,
        description="Port on 127.0.0.1 where `kehoach demo` and `kehoach rehearse` serve the mail catcher's "
        "Maildir over IMAP with Dovecot, when it is installed (0: not served).",
    )
    imap_host: str = Field(
        "",
        description="IMAP server of the mailbox the reply addresses deliver to; `kehoach inbound` reads it "
        "(empty: it reads no mailbox unless told to with --imap).",
    )
    imap_port: int = Field(993, description="IMAP port (993 for implicit TLS, 143 for STARTTLS).")
    imap_tls: ImapTls = Field(ImapTls.tls, description="`tls` (implicit TLS), `starttls`, or `none` (local only).")
    imap_ca_file: Path | None = Field(
        None,
        description="PEM file of the CA(s) the IMAP server's certificate is verified against, instead of the "
        "system's (a province's own CA). Empty: the system's CAs.",
    )
    imap_user: str = Field("", description="IMAP user name.")
    imap_password: SecretStr | None = Field(None, description="IMAP password (environment only).")
    imap_folder: str = Field("INBOX", description="Folder the replies arrive in.")
    imap_done_folder: str = Field(
        "Đã xử lý", description="Folder each reply is moved to once handled (created if missing)."
    )
    imap_timeout: float = Field(
        30.0, gt=0, description="Seconds connecting and each IMAP command may take before the reader reconnects."
    )
    imap_poll_interval: float = Field(
        60.0, gt=0, description="Seconds between looks at the folder when the server offers no IDLE."
    )
    imap_idle_seconds: float = Field(
        20 * 60.0,
        gt=0,
        le=28 * 60.0,
        description="IDLE is renewed after this long (servers may drop it after 29 minutes, RFC 2177).",
    )
    imap_claim_seconds: float = Field(
        600.0,
        gt=0,
        description="A reply claimed (\\Seen) but still in the folder after this long was left by a reader that "
        "stopped: it is made unseen again and handled anew.",
    )
    inbound_alert_after: float = Field(
        900.0,
        gt=0,
        description="Seconds the mailbox may stay unreachable before the coordinators are told (once a day per "
        "mailbox): the officials' replies wait unread meanwhile.",
    )
    inbound_handle_timeout: float = Field(
        120.0, gt=0, description="Seconds applying one reply may take before it is left for a later try."
    )
    lmtp_enabled: bool = Field(
        False, description="Whether `kehoach inbound` also takes replies from the local mail relay over LMTP."
    )
    lmtp_host: str = Field("127.0.0.1", description="Address the LMTP server listens on (this machine only).")
    lmtp_port: int = Field(8024, description="Port the LMTP server listens on (Postfix: `lmtp:inet:127.0.0.1:8024`).")
    inbound_max_bytes: int = Field(
        10 * 1024 * 1024, gt=0, description="Largest reply accepted (LMTP answers 552 above; IMAP leaves it)."
    )
    default_language: str = Field("vi", description="Language of pages and emails when the reader has no setting.")

    link_failure_limit: int = Field(
        20, ge=0, description="Failed link requests per client and window before 429 (0: off)."
    )
    link_failure_window: float = Field(60.0, gt=0, description="Seconds of the failed-link window.")
    trusted_proxies: str = Field(
        "",
        description="Comma-separated addresses or networks of the reverse proxies in front of `kehoach web` "
        "(e.g. 10.0.0.0/8): behind them the client is read from X-Forwarded-For.",
    )
    max_body_bytes: int = Field(8 * 1024 * 1024, description="Largest request body accepted (413 above).")
    max_attachment_bytes: int = Field(5 * 1024 * 1024, description="Largest file submitted with a step.")
    max_field_bytes: int = Field(64 * 1024, description="Largest single form field (422 above).")

    prefect_deployment: str = Field("annual-cycle/annual-cycle", description="Deployment that runs the annual cycle.")
    event_cycle_deployment: str = Field(
        "economy-event-cycle/economy-event-cycle",
        description="Deployment the service starts for each economic event recorded through the API (empty: none).",
    )
    problem_cycle_deployment: str = Field(
        "problem-escalation/problem-escalation",
        description="Deployment the service starts for each problem recorded through the API (empty: none).",
    )
    reconcile: bool = Field(
        True,
        description="Whether `kehoach web` also delivers the wake queue (runs to resume), watches cycle runs, "
        "starts recorded event and problem cycles and relays events. Any number of processes may "
        "(the queue is claimed); off where other processes do it.",
    )
    resume_retry_interval: float = Field(
        2.0, gt=0, description="Seconds between looks at the wake queue (runs to resume) when it was empty."
    )
    resume_timeout: float = Field(
        10.0, gt=0, description="Seconds a call to Prefect may take before it is retried later."
    )
    sweep_cron: str = Field(
        "*/15 * * * *",
        description="When the sweep (reminders, escalations, expiries, scheduled stages) runs; empty: never by itself.",
    )
    schedules: bool = Field(
        True,
        description="Whether the worker gives the cycles their calendar schedules (yearly, monthly) and the sweep "
        "its cron; off for a rehearsal, which starts its cycles on its own compressed calendar.",
    )
    run_heartbeat_seconds: float = Field(10.0, gt=0, description="How often a working cycle run writes its heartbeat.")
    run_silence_seconds: float = Field(
        90.0, gt=0, description="A working cycle run silent this long is asked after in Prefect (it may have died)."
    )

    # Channels besides email (notifications/channels): Zalo's ZNS and SMS. Secrets from the environment only.
    zalo_enabled: bool = Field(False, description="Whether officials may be reached on Zalo (ZNS).")
    zns_templates: dict[str, str] = Field(
        default_factory=dict,
        description='The approved ZNS template id of each message kind, as JSON: {"approval_request": "231234", ...} '
        "(`kehoach channels check` lists the kinds).",
    )
    zns_base_url: str = Field("https://business.openapi.zalo.me", description="Zalo's ZNS API.")
    zalo_oauth_url: str = Field("https://oauth.zaloapp.com", description="Zalo's OAuth server (the OA token).")
    zalo_app_id: str = Field("", description="The Zalo app (Zalo for Developers) linked to the province's OA.")
    zalo_secret_key: SecretStr | None = Field(None, description="The Zalo app's secret key (environment only).")
    sms_enabled: bool = Field(False, description="Whether officials may be reached by SMS (eSMS.vn).")
    esms_base_url: str = Field("https://rest.esms.vn/MainService.svc/json", description="eSMS.vn's API.")
    esms_api_key: SecretStr | None = Field(None, description="eSMS ApiKey (environment only).")
    esms_secret_key: SecretStr | None = Field(None, description="eSMS SecretKey (environment only).")
    esms_brandname: str = Field("", description="The registered brandname the SMS come from.")
    esms_sms_type: str = Field("2", description="eSMS SmsType: 2, customer care with a brandname.")
    esms_sandbox: bool = Field(
        True, description="eSMS sandbox: requests are checked, not sent nor charged. Turn off to send."
    )
    esms_callback_url: str = Field(
        "",
        description="A URL of your own for eSMS to call with each SMS's delivery (empty: none). kehoach does not "
        "need it: it asks eSMS for each SMS's report itself (notifications.delivery_reports).",
    )
    channel_timeout: float = Field(
        15.0, gt=0, description="Seconds a call to Zalo or eSMS may take before it is retried later."
    )
    channel_report_minutes: float = Field(
        30.0,
        gt=0,
        description="Minutes a Zalo or SMS message may go without a delivery report before the official's next "
        "channel is tried.",
    )
    channel_report_poll_seconds: float = Field(
        60.0, gt=0, description="How often the provider is asked whether a sent Zalo or SMS message was delivered."
    )

    @field_validator("default_language")
    @classmethod
    def _known_language(cls, value: str) -> str:
        if value not in ("vi", "en"):
            raise ValueError("language must be 'vi' or 'en'")
        return value

    @field_validator("reply_domain")
    @classmethod
    def _a_domain(cls, value: str) -> str:
        value = value.strip().lower().rstrip(".")
        if value and not _DOMAIN.match(value):
            raise ValueError(f"not a domain name: {value!r}")
        return value

    @field_validator("reply_local_part")
    @classmethod
    def _a_local_part(cls, value: str) -> str:
        if not valid_local_part(value):
            raise ValueError(
                f"not a local part for reply addresses: {value!r} (lowercase letters, digits, '.', '_', '-', "
                "at most 31 characters, no '+')"
            )
        return value

    @model_validator(mode="after")
    def _production_needs_a_real_secret_and_signers(self) -> Settings:
        if self.environment is Environment.production:
            secret = self.link_secret.get_secret_value() if self.link_secret else ""
            if len(secret) < 32 or secret in {"changeme", "secret", "development"}:
                raise ValueError(
                    "KEHOACH_LINK_SECRET must be set to a random value of at least 32 characters in production"
                )
            if self.signing_file is None:
                raise ValueError(
                    "KEHOACH_SIGNING_FILE must name the signing file in production: the issued report is signed by "
                    "its director and its agency (Decree 30/2020), never with test certificates"
                )
        return self

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'kehoach.db').resolve()}"

    @property
    def mail_dir(self) -> Path:
        return self.data_dir / "mail"

    @property
    def mail_domain(self) -> str:
        """The domain of the sender's address: Message-IDs and calendar UIDs are made in it."""
        return self.mail_from.rsplit("@", 1)[-1]

    @property
    def trusted_authserv_ids(self) -> tuple[str, ...]:
        """`reply_trusted_authserv_ids` as a list, lowercase (as RFC 8601 compares them)."""
        return tuple(i.strip().lower() for i in self.reply_trusted_authserv_ids.split(",") if i.strip())

    @property
    def organizer(self) -> tuple[str, str]:
        """The (name, address) calendar invites come from."""
        return self.mail_from_name, self.mail_from

    def link_secret_bytes(self) -> bytes:
        """The link key; in development one is generated once and kept in the data folder."""
        if self.link_secret is not None:
            return self.link_secret.get_secret_value().encode()
        path = self.data_dir / DEVELOPMENT_SECRET_FILE
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(secrets.token_urlsafe(48))
            tmp.chmod(0o600)
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)  # first writer wins; a racing process reads the winner's key
            tmp.unlink()
        return path.read_text().strip().encode()


@lru_cache
def get_settings() -> Settings:
    return Settings()
