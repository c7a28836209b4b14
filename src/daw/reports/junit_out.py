"""The JUnit XML report: one test suite per gate and one test case per criterion.

CI systems that show JUnit results list a blocking criterion as a failure, a
measurement error as an error and a criterion not measured as skipped. A
warning passes, with its reason in ``system-out``.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from daw.policy.verdict import CriterionResult, Status
from daw.reports import criteria_by_gate, format_threshold, format_value
from daw.run import RunRecord

# Characters that XML 1.0 does not allow, even escaped.
_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")

_OUTCOMES = {
    Status.BLOCK: "failures",
    Status.ERROR: "errors",
    Status.NOT_APPLICABLE: "skipped",
}


def render_junit(record: RunRecord) -> str:
    """Render the criteria of ``record`` as JUnit XML with an XML declaration.

    ``error`` becomes ``<error>`` whether or not it blocks at this stage, so a
    measurement that could not be taken is never shown as a pass.
    """
    verdict = record.verdict
    root = ET.Element("testsuites", name="daw")
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for gate, results in criteria_by_gate(verdict).items():
        suite = _suite(record, gate, results)
        root.append(suite)
        for key in totals:
            totals[key] += int(suite.get(key, "0"))

    for key, count in totals.items():
        root.set(key, str(count))
    ET.indent(root)
    text = ET.tostring(root, encoding="unicode")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + text + "\n"


def _clean(text: str) -> str:
    return _INVALID_XML.sub("\ufffd", text)


def _suite(record: RunRecord, gate: str, results: list[CriterionResult]) -> ET.Element:
    counts = {key: 0 for key in _OUTCOMES.values()}
    for result in results:
        outcome = _OUTCOMES.get(result.status)
        if outcome:
            counts[outcome] += 1
    suite = ET.Element(
        "testsuite",
        name=gate,
        tests=str(len(results)),
        failures=str(counts["failures"]),
        errors=str(counts["errors"]),
        skipped=str(counts["skipped"]),
    )
    suite.append(_properties(record))
    for result in results:
        suite.append(_case(result))
    return suite


def _properties(record: RunRecord) -> ET.Element:
    verdict = record.verdict
    values = {
        "run_id": record.run_id,
        "stage": verdict.stage,
        "environment": verdict.environment,
        "status": verdict.status.value,
        "policy_digest": verdict.policy_digest,
        "commit": record.commit or "",
    }
    properties = ET.Element("properties")
    for name, value in values.items():
        ET.SubElement(properties, "property", name=name, value=_clean(value))
    return properties


def _case(result: CriterionResult) -> ET.Element:
    case = ET.Element("testcase", classname=f"daw.{result.gate}", name=result.id)
    reason = _clean(result.reason)
    detail = _clean(
        f"value {format_value(result.value, result.unit)},"
        f" threshold {format_threshold(result)}, action {result.action.value}"
    )
    if result.status is Status.BLOCK:
        failure = ET.SubElement(case, "failure", message=reason, type="block")
        failure.text = _detail_with_findings(detail, result)
    elif result.status is Status.ERROR:
        error = ET.SubElement(case, "error", message=reason, type="error")
        error.text = detail
    elif result.status is Status.NOT_APPLICABLE:
        ET.SubElement(case, "skipped", message=reason)
    elif result.status is Status.WARN:
        ET.SubElement(case, "system-out").text = f"warning: {reason}"
    return case


def _detail_with_findings(detail: str, result: CriterionResult) -> str:
    if not result.findings:
        return detail
    return detail + "\nfindings: " + ", ".join(result.findings)
