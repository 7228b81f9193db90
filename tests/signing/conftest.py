"""The signing tests' shared parts: the local PKI over HTTP (CA, TSA, OCSP, CRL), the 2026
report as its director signs it, the two signers as PKCS#12 files opened through the signer
interface, and the report issued once through the whole chain (director, register, agency) with
timestamps and revocation information, for the tests that read it."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pypdfium2
import pypdfium2.raw as pdfium_raw
import pytest
from pyhanko.sign.signers import Signer

from approvals.consolidated.document import awaiting_number
from approvals.consolidated.pdf_file import PdfLayout, pdf_with_layout
from approvals.signing import test_images
from approvals.signing.backends import Pkcs12Signer, open_signer
from approvals.signing.register import fill_number_and_date
from approvals.signing.signatures import seal_as_agency, sign_as_director, timestamp_authority
from tests.support.local_pki import PASSWORD, LocalPki, local_pki
from tests.support.report_document import report_document

__all__ = ["local_pki"]  # the fixture, for this folder's tests

NUMBER = "Số: 117/BC-SKHCN"
PLACE_DATE = "Lạng Sơn, ngày 05 tháng 12 năm 2026"
ARTIFACTS = Path(__file__).resolve().parent.parent.parent / "test-artifacts"


@dataclass(frozen=True)
class Report:
    pdf: bytes  # as the director signs it: not a draft, its number and date left to fields
    layout: PdfLayout
    signer_name: str  # the name typed under the signature


@dataclass(frozen=True)
class Issued:
    signed: bytes  # the director's signature
    numbered: bytes  # then the number and the date
    sealed: bytes  # then the agency's signature: the issued report


@pytest.fixture(scope="session")
def report() -> Report:
    document = awaiting_number(report_document())
    pdf, layout = pdf_with_layout(document, number_and_date_as_fields=True)
    return Report(pdf, layout, document.signer_name)


@pytest.fixture(scope="session")
def signing_images() -> dict[str, bytes]:
    return {
        "signature": test_images.draw_test_signature("Nông Thị Hạnh"),
        "seal": test_images.draw_test_seal("Sở Khoa học và Công nghệ", governing="UBND tỉnh Lạng Sơn"),
    }


@pytest.fixture(scope="session")
def pki_signers(local_pki: LocalPki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Signer]]:
    """The director and the agency, each a PKCS#12 file whose password is in the environment."""
    folder = tmp_path_factory.mktemp("signers")
    environ = {"KEHOACH_DIRECTOR_P12_PASSWORD": PASSWORD.decode(), "KEHOACH_AGENCY_P12_PASSWORD": PASSWORD.decode()}
    with ExitStack() as stack:
        found = {}
        for role in ("director", "agency"):
            (folder / f"{role}.p12").write_bytes(local_pki.pkcs12(role))
            config = Pkcs12Signer(file=folder / f"{role}.p12", password_env=f"KEHOACH_{role.upper()}_P12_PASSWORD")
            found[role] = stack.enter_context(open_signer(config, environ))
        yield found


@pytest.fixture(scope="session")
def issued(report: Report, signing_images, pki_signers, local_pki: LocalPki) -> Issued:
    """The report through the whole chain, each signature timestamped by the local TSA and
    carrying its chain's revocation information (OCSP, CRL) from the local services."""
    tsa = timestamp_authority(local_pki.tsa_url)
    roots = [local_pki.root]
    signed = sign_as_director(
        report.pdf,
        pki_signers["director"],
        layout=report.layout,
        image=signing_images["signature"],
        timestamper=tsa,
        trust_roots=roots,
    )
    numbered = fill_number_and_date(signed, number=NUMBER, place_date=PLACE_DATE)
    sealed = seal_as_agency(
        numbered,
        pki_signers["agency"],
        layout=report.layout,
        seal=signing_images["seal"],
        timestamper=tsa,
        trust_roots=roots,
    )
    return Issued(signed, numbered, sealed)


def flattened_text(pdf: bytes, page: int) -> str:
    """A page's text as a reader copies it, its fields' and signatures' appearances included
    (pdfium flattens them into the page first)."""
    document = pypdfium2.PdfDocument(io.BytesIO(pdf))
    try:
        handle = document[page]
        assert pdfium_raw.FPDFPage_Flatten(handle.raw, pdfium_raw.FLAT_PRINT) == pdfium_raw.FLATTEN_SUCCESS
        handle.close()
        return str(document[page].get_textpage().get_text_range())
    finally:
        document.close()
