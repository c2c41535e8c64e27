"""Procedure files the tests deploy beside the shipped ones."""

from __future__ import annotations


def life_cycle_procedure(code: str, land_office: str, department: str) -> str:
    """Issue 14's shape: the desk, an appraisal, an approval that may send the file back
    to the appraisal (once), and the result returned at the desk."""
    return f"""\
code: "{code}"
name: Thủ tục thử vòng đời hồ sơ
sector: G13-TN01
level: xa
version: 1
calendar: continuous
deadline: 10d
max_returns: 1
steps:
  - {{id: tiep-nhan, name: Tiếp nhận, agency: "bpmc-xa-{{commune}}", deadline: 1d}}
  - {{id: tham-dinh, name: Thẩm định, agency: {land_office}, deadline: 3d}}
  - {{id: phe-duyet, name: Phê duyệt, agency: {department}, deadline: 1d, returns_to: [tham-dinh]}}
  - {{id: tra-ket-qua, name: Trả kết quả, agency: "bpmc-xa-{{commune}}", deadline: 1d, returns_result: true}}
"""
