"""`kehoach report verify FILE` (issue 24, 'anyone can verify it'), as a văn thư at the PPC runs
it on the PDF they received: each signature with who signed, when, whether the file is intact
since and whether the certificate is trusted; exit 0 only when every signature is valid."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from approvals.signing import test_pki
from service.cli import app


@pytest.fixture
def verify(tmp_path, local_pki):
    root = tmp_path / "root.der"
    root.write_bytes(local_pki.root)

    def run(pdf: bytes, *options: str, roots=(root,)) -> tuple[int, str]:
        path = tmp_path / "bao-cao.pdf"
        path.write_bytes(pdf)
        args = ["report", "verify", str(path), *[a for r in roots for a in ("--trust-root", str(r))], *options]
        result = CliRunner().invoke(app, args, env={"KEHOACH_DATA_DIR": str(tmp_path / "data")})
        return result.exit_code, result.output

    return run


def _director_time_changed(pdf: bytes) -> bytes:
    """One digit of the director's signing time (/M, inside the signed range) changed."""
    at = re.search(rb"/M \(D(?::|\\072)(\d{14})", pdf)  # the colon may be written escaped
    assert at is not None
    digit = at.start(1) + 3  # the year's last digit: still a date, another one
    return pdf[:digit] + (b"7" if pdf[digit : digit + 1] != b"7" else b"8") + pdf[digit + 1 :]


def test_the_issued_report_verifies_signature_by_signature(verify, issued):
    code, out = verify(issued.sealed)
    assert code == 0, out
    assert "Đối chiếu với 1 chứng thư gốc tin cậy." in out
    assert re.search(r"Chữ ký 1 \(director\): .*Nguyễn Thị Lấp Lánh Ánh.*: hợp lệ", out), out
    assert re.search(r"Chữ ký 2 \(agency\): .*: hợp lệ", out), out
    assert out.count("Toàn vẹn từ khi ký: có") == 2 and out.count("Chứng thư số tin cậy và có hiệu lực khi ký: có") == 2
    assert "thay đổi sau đó: form_filling" in out  # the register's number and date, after the director
    assert out.count("Dấu thời gian: 20") == 2 and "+07:00" in out  # the local TSA's time, in Vietnam's zone
    assert "CHỨNG THƯ THỬ NGHIỆM" in out  # the suite's PKI names itself a test


def test_a_changed_byte_reads_modified_after_signing_in_either_language(verify, issued):
    changed = _director_time_changed(issued.sealed)
    code, out = verify(changed)
    assert code == 1 and "Chữ ký 1 (director)" in out and "đã bị sửa sau khi ký" in out, out
    code, out = verify(changed, "--lang", "en")
    assert code == 1 and "Signature 1 (director)" in out and "modified after signing" in out, out


def test_a_report_checked_against_other_roots_is_not_trusted(verify, issued, tmp_path):
    foreign = tmp_path / "foreign.pem"
    foreign.write_bytes(test_pki.TestAuthority.create().identity.certificate_pem())
    code, out = verify(issued.sealed, roots=(foreign,))
    assert code == 1 and out.count("Kết luận: không được tin cậy") == 2, out


def test_a_file_that_is_not_a_report_is_refused_and_an_unsigned_one_says_so(verify, report):
    code, out = verify(b"not a pdf at all")
    assert code == 2 and "not a readable PDF" in out, out
    code, out = verify(report.pdf)
    assert code == 1 and "Tệp không có chữ ký số nào." in out, out
    code, out = verify(report.pdf, "--lang", "fr")
    assert code == 2 and "unknown language" in out
