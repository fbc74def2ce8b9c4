"""Security phase: secrets in build contexts, known vulnerabilities, Dockerfile lint and image checks."""

import os
from pathlib import Path

import pytest

from build_suite.security import hadolint, imagecheck, osv
from build_suite.security import secrets as secret_scan

# CI can point the vulnerability check at an offline OSV export without editing buildsuite.toml.
OSV_DATABASE_VARIABLE = "BUILD_SUITE_OSV_DATABASE"


@pytest.fixture(scope="module")
def security_section(build_state):
    # `checks` covers the wheelhouse as a whole, `service_checks` each service's build context and image.
    section = {"findings": [], "checks": {}, "service_checks": {}}
    build_state.record.set_section("security", section)
    return section


def add_findings(section, check, findings):
    section["findings"].extend({"check": check, **finding} for finding in findings)


def record_check(section, check, service_name, status, findings=0):
    """Record that `check` ran ("checked") or was turned off ("off") for one service, with its finding count."""
    section["service_checks"].setdefault(check, {})[service_name] = {"status": status, "findings": findings}


def test_no_secrets_in_context(service_name, build_config, build_state, security_section):
    if not build_config.security.secrets:
        record_check(security_section, "secrets", service_name, "off")
        pytest.skip("secret scanning is off: [security] secrets = false")
    service = build_config.service(service_name)
    # The build's own outputs are skipped: the SBOM and wheel-time history hold sha256 digests that read as
    # high-entropy strings, and --report-dir may point inside the build context.
    skip = [build_config.wheelhouse.output, build_state.report_dir]
    findings = secret_scan.scan_context(service.context, service.dockerfile, skip=skip)
    if build_config.security.baseline is not None and build_config.security.baseline.is_file():
        findings = secret_scan.filter_accepted(findings, secret_scan.load_baseline(build_config.security.baseline))
    add_findings(security_section, "secrets", [
        {"where": f"{finding.file}:{finding.line}", "kind": finding.kind, "severity": "high",
         "message": f"service {service_name}: possible secret in the build context"} for finding in findings])
    record_check(security_section, "secrets", service_name, "checked", len(findings))
    messages = [secret_scan.format_finding(finding) for finding in findings]
    assert not findings, (f"service {service_name!r}: secrets in the build context {service.context}:\n"
                          + "\n".join(messages)
                          + "\nwhat to do: remove them, exclude the files in .dockerignore, or accept them in "
                            "[security] baseline")


def osv_database(build_config):
    variable = os.environ.get(OSV_DATABASE_VARIABLE)
    return Path(variable) if variable else build_config.security.osv_database


def test_no_known_vulnerabilities(wheelhouse, build_config, security_section):
    settings = build_config.security
    database = osv_database(build_config)
    packages = [(wheel.name, wheel.version) for wheel in wheelhouse.wheels]
    if database is None and not settings.osv_online:
        result = None
        reason = (f"no OSV database configured: set [security] osv_database or {OSV_DATABASE_VARIABLE} "
                  "to an OSV export folder")
    else:
        api_url = settings.osv_api_url if settings.osv_online else None
        result = osv.check_packages(packages, database, snapshot_date=settings.osv_snapshot_date, api_url=api_url)
        reason = result.reason
    check = {"database": str(database) if database else None, "packages": len(packages)}
    security_section["checks"]["vulnerabilities"] = check
    if result is None or not result.available:
        check["status"] = "unavailable"
        check["reason"] = reason
        message = f"vulnerability check unavailable, not passed: {reason}"
        if settings.osv_missing == "fail":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)

    check.update(status="checked", source=result.source, snapshot=result.snapshot,
                 vulnerabilities=len(result.vulnerabilities))
    failing = osv.failing(result, settings.severity_threshold, settings.osv_unknown_severity)
    add_findings(security_section, "vulnerabilities", [
        {"where": f"{vulnerability.package} {vulnerability.version}", "kind": vulnerability.advisory_id,
         "severity": vulnerability.severity, "message": osv.format_vulnerability(vulnerability)}
        for vulnerability in result.vulnerabilities])
    assert not failing, (f"known vulnerabilities at or above {settings.severity_threshold} "
                         f"(database snapshot {result.snapshot}):\n"
                         + "\n".join(osv.format_vulnerability(vulnerability) for vulnerability in failing)
                         + "\nwhat to do: upgrade the packages to a fixed version in the requirements files")


def test_dockerfile_lint(service_name, build_config, security_section):
    settings = build_config.security
    if not settings.hadolint:
        record_check(security_section, "hadolint", service_name, "off")
        pytest.skip("Dockerfile lint is off: [security] hadolint = false")
    service = build_config.service(service_name)
    result = hadolint.lint_dockerfile(service.dockerfile, settings.hadolint_failure_level,
                                      ignore=settings.hadolint_ignore, config=settings.hadolint_config)
    add_findings(security_section, "hadolint", [
        {"where": f"{finding.file}:{finding.line}", "kind": finding.code, "severity": finding.level,
         "message": finding.message} for finding in result.findings])
    record_check(security_section, "hadolint", service_name, "checked", len(result.findings))
    assert result.passed, (f"service {service_name!r}: hadolint findings at or above "
                           f"{settings.hadolint_failure_level} in {service.dockerfile}:\n"
                           + "\n".join(hadolint.format_finding(finding) for finding in result.failures))


def test_image_safe(service_name, build_config, images, engine, security_section):
    result = images.get(service_name)
    assert result.image_id, f"service {service_name!r} has no image to check"
    findings = imagecheck.check_engine_image(engine.client, result.image_id, build_config.security.image_allowed_names)
    add_findings(security_section, "image", [
        {"where": f"{service_name} {finding.name}" if finding.name else service_name, "kind": finding.kind,
         "severity": "high", "message": finding.reason} for finding in findings])
    record_check(security_section, "image", service_name, "checked", len(findings))
    assert not findings, (f"service {service_name!r}: image problems:\n"
                          + "\n".join(imagecheck.format_finding(finding) for finding in findings))
