"""Who is in the plan: agencies (and what succeeded them), roles, officials, and the officials
made for every unit of a kind; each valid between two dates."""

from __future__ import annotations

import datetime as dt
from enum import Enum
from typing import Annotated

from pydantic import (
    AfterValidator,
    EmailStr,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from approvals.plan.reach import DEFAULT_CHANNELS, Address, Channels, Consent, MobilePhone, addresses
from approvals.plan.values import ADDRESS, AsciiId, OneLine, RoleId, Strict, Text, one_of, quoted


class Validity(Strict):
    valid_from: dt.date | None = None
    valid_to: dt.date | None = None

    @field_validator("valid_to")
    @classmethod
    def _not_before_start(cls, valid_to: dt.date | None, info: ValidationInfo) -> dt.date | None:
        # A field validator, so the problem is reported at valid_to (valid_from is validated first).
        valid_from = info.data.get("valid_from")
        if valid_from and valid_to and valid_to < valid_from:
            raise ValueError(f"valid_to {valid_to} is before valid_from {valid_from}")
        return valid_to

    def valid_on(self, day: dt.date) -> bool:
        return (self.valid_from is None or self.valid_from <= day) and (self.valid_to is None or day <= self.valid_to)


class AgencyKind(str, Enum):
    state_executive = "state_executive"
    department = "department"
    party_body = "party_body"
    press = "press"
    association = "association"
    mass_organisation = "mass_organisation"
    public_service_unit = "public_service_unit"
    culture_centre = "culture_centre"
    local_government = "local_government"
    ministry = "ministry"  # a national ministry: a recipient of the province's reports


class Succession(Strict):
    """Which successor took one of an ended agency's duties (the DIC's plan leadership went to
    the DOST, its press management to the Department of Culture, Sports and Tourism), and
    whether that is verified for the province or assumed from the national pattern."""

    duty: AsciiId
    to: AsciiId
    verified: bool = Field(False, description="Confirmed for the province (else assumed from the national pattern).")
    basis: str = Field("", max_length=300, description="Where it is written, or why it is assumed.")


class Agency(Validity):
    id: AsciiId
    name: Text
    kind: Annotated[AgencyKind, one_of(AgencyKind, "agency kind")]
    successors: list[AsciiId] = []
    succession: list[Succession] = Field(
        [], description="For an agency whose duties were split: which successor took each duty."
    )
    authority: str = "assigned"
    abbreviation: str | None = Field(
        None,
        pattern=r"^[A-ZĐ0-9]{2,16}$",
        description="Its short form in a document's symbol, upper case (Số: 12/BC-SKHCN).",
    )
    email: Annotated[EmailStr, AfterValidator(_outbox_address)] | None = Field(
        None, description="Its official mailbox, for documents addressed to it (the consolidated report)."
    )

    @field_validator("authority")
    @classmethod
    def _known_authority(cls, authority: str) -> str:
        if authority not in ("assigned", "request_only"):
            raise ValueError(f"unknown authority {quoted(authority)} (use assigned or request_only)")
        return authority


class Duty(Strict):
    """One of an agency's duties, followed through mergers and splits to whoever carries it."""

    agency: AsciiId
    duty: AsciiId


class Role(Strict):
    id: RoleId
    name: Text
    per_unit: bool = Field(
        False,
        description="Held in each unit (an outlet's head): in a branch for one unit, only that unit's holder acts.",
    )
    carried_by: Duty | None = Field(
        None,
        description="Held only in the agency that carries this duty on the day (the plan's lead, the press "
        "orientation, the collection of reports each follow their own successor).",
    )


class Language(str, Enum):
    vi = "vi"
    en = "en"


def _outbox_address(value: str) -> str:
    if not ADDRESS.match(value):
        raise ValueError(
            f"the address {value!r} has a character email headers refuse (a quote, comma, semicolon, bracket or space)"
        )
    return value


class Official(Validity):
    id: AsciiId
    name: OneLine = Field(min_length=1, max_length=200)
    email: Annotated[EmailStr, AfterValidator(_outbox_address)]
    agency: AsciiId
    title: Text
    roles: list[RoleId] = Field(min_length=1)
    language: Annotated[Language, one_of(Language, "language")] = Language.vi
    # How they are reached (approvals.plan.reach): phone and consent before channels, whose rules read them.
    phone: MobilePhone | None = Field(None, description="Their mobile phone, for Zalo and SMS (stored +84...).")
    consent: Consent = Field(Consent(), description="The day they agreed to Zalo and to SMS (Decree 13/2023/NĐ-CP).")
    channels: Channels = Field(DEFAULT_CHANNELS, description="How they are reached, in order; email last.")

    def reach(self, on: dt.date | None = None) -> list[Address]:
        """The channels to reach them by, in their order, each with its address: their phone
        (+84...) for Zalo and SMS, only where they agreed (by `on`, when given), and their email,
        last. Attachments and calendar invites go by email whatever the order."""
        return addresses(self.channels, phone=self.phone, email=str(self.email), consent=self.consent, on=on)


class UnitOfficials(Strict):
    """Officials made for every unit of some kinds (or named units) that has nobody holding the
    roles: a unit's mailbox rather than a person, e.g. the reporting officer of each of the 65
    communes. `id`, `email` and `name` are templates: {agency} is the unit's id, {agency_vi} and
    {agency_en} its names. They hold office while their unit exists. Their channels are the
    entry's (email, by default); a phone belongs to one person, so only an entry for one unit has one."""

    roles: list[RoleId] = Field(min_length=1)
    kinds: list[Annotated[AgencyKind, one_of(AgencyKind, "agency kind")]] = []
    agencies: list[AsciiId] = []
    id: str = Field(pattern=r"^[a-z0-9_]*\{agency\}[a-z0-9_]*$")
    email: str = Field(pattern=r"^[^@\s]*\{agency\}[^@\s]*@[^@\s]+$")
    name: str = Field(min_length=1, max_length=120)
    title: Text
    language: Annotated[Language, one_of(Language, "language")] = Language.vi
    phone: MobilePhone | None = Field(None, description="For an entry of one unit: its official's mobile phone.")
    consent: Consent = Field(Consent(), description="The day that official agreed to Zalo and to SMS.")
    channels: Channels = Field(DEFAULT_CHANNELS, description="How its officials are reached, in order; email last.")

    @field_validator("phone")
    @classmethod
    def _one_person(cls, phone: str | None, info: ValidationInfo) -> str | None:
        # A field validator, so the problem is reported at phone (kinds and agencies are read first).
        if phone is not None and (info.data.get("kinds") or len(info.data.get("agencies") or []) != 1):
            raise ValueError(
                "a phone reaches one person, and this entry makes an official for several units: give a "
                "phone only on an entry for one unit (agencies: [its id]), before the entries by kind"
            )
        return phone

    @model_validator(mode="after")
    def _some_units(self) -> UnitOfficials:
        if not self.kinds and not self.agencies:
            raise ValueError("give the kinds of units, or the units (agencies), to make officials for")
        return self

    def made_for(self, agency: Agency) -> Official:
        fill = {"agency": agency.id, "agency_vi": agency.name.vi, "agency_en": agency.name.en}
        return Official(
            id=self.id.format(**fill),
            name=self.name.format(**fill),
            email=self.email.format(**fill).replace("_", "-"),
            agency=agency.id,
            title=self.title,
            roles=list(self.roles),
            language=self.language,
            phone=self.phone,
            consent=self.consent,
            channels=list(self.channels),
            valid_from=agency.valid_from,
            valid_to=agency.valid_to,
        )
