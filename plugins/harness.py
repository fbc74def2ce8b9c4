"""The build harness: options, markers, configuration loading, phase order, header and summary.

The harness only acts on a build session, one whose arguments point into the
build_suite folder. The project's own `pytest tests` loads this plugin too,
and there it registers its options and markers and does nothing else.
"""

from __future__ import annotations

import re
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from build_suite.clean import clean_build
from build_suite.config import DEFAULT_CONFIG, BuildConfig, load_config
from build_suite.engine import connect_engine
from build_suite.errors import BuildSuiteError
from build_suite.lock import BuildLock
from build_suite.output import MODES, Output, stream_writer
from build_suite.record import PHASES, BuildRecord, build_outcome, new_build_id, utc_now
from build_suite.summary import header_lines, summary_lines

BUILD_SUITE_DIR = Path(__file__).resolve().parent.parent / "build_suite"

# Marker name -> phase. `validate` selects the environment checks only; `full` selects every phase.
MARKERS = {
    "full": "every phase of the build",
    "validate": "environment checks only: builds nothing",
    "wheelhouse": "build the wheelhouse and validate it for the target",
    "images": "build one image per service",
    "containers": "start the containers and wait until they are healthy",
    "integration": "run the project's integration tests against the running containers",
    "benchmark": "measure image size, start time, probe latency and memory against the previous build",
    "security": "scan build contexts for secrets, packages for known vulnerabilities, lint Dockerfiles",
    "docs": "build the docs and write reports/BUILD.md",
}
PHASE_MARKER = {"environment": "validate"}


@dataclass
class BuildSession:
    """Everything a build session shares between hooks and fixtures."""

    config: BuildConfig
    record: BuildRecord
    report_dir: Path
    keep_containers: bool
    clean: bool
    started: float = field(default_factory=time.monotonic)
    engine_description: str = "not checked yet"
    lock: BuildLock | None = None


BUILD_SESSION = pytest.StashKey[BuildSession]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("build-suite", "build-suite build harness")
    group.addoption("--build-config", dest="build_config", metavar="PATH", default=None,
                    help="buildsuite.toml describing the build (default: the ini option build_config, "
                         "else the bundled demo stack)")
    group.addoption("--clean", action="store_true", default=False,
                    help="before the build, remove this project's wheelhouse, the images and containers "
                         "labelled by the harness, and the reports folder")
    group.addoption("--progress", choices=MODES, default="auto",
                    help="live progress: auto, tty (one updating line), plain (a line per update, for CI "
                         "logs) or quiet (default: auto)")
    group.addoption("--report-dir", dest="report_dir", metavar="DIR", default=None,
                    help="folder for the JSON, HTML and JUnit reports and the build log (default: reports/)")
    group.addoption("--lock", choices=("wait", "fail"), default="wait",
                    help="when another build of the same project is running: wait for it (default) or fail")
    group.addoption("--keep-containers", action="store_true", default=False,
                    help="leave the containers and the network running after the build, for debugging")
    parser.addini("build_config", "path of buildsuite.toml, relative to the rootdir", default="")


def is_build_session(config: pytest.Config) -> bool:
    """Tell whether any command-line argument points into the build_suite folder."""
    for argument in config.args:
        path = Path(str(argument).split("::")[0])
        if not path.is_absolute():
            path = Path(config.invocation_params.dir) / path
        path = path.resolve()
        if path == BUILD_SUITE_DIR or BUILD_SUITE_DIR in path.parents:
            return True
    return False


def config_path(config: pytest.Config) -> Path:
    option = config.getoption("build_config")
    if option:
        return Path(config.invocation_params.dir, option)
    ini = config.getini("build_config")
    if ini:
        return Path(config.rootpath, ini)
    return DEFAULT_CONFIG


def report_dir(config: pytest.Config) -> Path:
    option = config.getoption("report_dir")
    if option:
        return Path(config.invocation_params.dir, option).resolve()
    return Path(config.rootpath, "reports").resolve()


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    for name, description in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {description}")
    build_session(config)


def build_session(config: pytest.Config) -> BuildSession | None:
    """Return the build session, setting it up on the first call; None outside a build session.

    The harness, reports and monitoring plugins each call this from pytest_configure, whose order
    between plugins is not fixed, so whichever runs first sets the session up.
    """
    if BUILD_SESSION in config.stash:
        return config.stash[BUILD_SESSION]
    if not is_build_session(config):
        return None
    return start_build_session(config)


def start_build_session(config: pytest.Config) -> BuildSession:
    try:
        build_config = load_config(config_path(config))
    except BuildSuiteError as error:
        raise pytest.UsageError(str(error)) from None

    check_marker_expression(config.getoption("markexpr") or "")
    build_id = getattr(config, "workerinput", {}).get("build_id") or new_build_id()
    record = BuildRecord(
        build_id=build_id,
        project={"name": build_config.project.name, "version": build_config.project.version},
        config_path=str(build_config.path),
        config_digest=build_config.digest,
        marker_expression=config.getoption("markexpr") or "",
    )
    state = BuildSession(
        config=build_config,
        record=record,
        report_dir=report_dir(config),
        keep_containers=config.getoption("keep_containers"),
        clean=config.getoption("clean"),
    )
    config.stash[BUILD_SESSION] = state
    # Under pytest-xdist, tests that share the running stack carry xdist_group("stack") and must run on
    # one worker, or every worker would start its own containers on the same host ports.
    # `-n 2` alone may still read "no" here, depending on when pytest-xdist fills in its default.
    if getattr(config.option, "numprocesses", None) and getattr(config.option, "dist", "no") in ("no", "load"):
        config.option.dist = "loadgroup"
    # A worker parses the command line again, and there `-n 2` alone leaves --dist at "no". So xdist would
    # not tag the grouped tests on the worker unless the controller's choice arrives in the worker input.
    if getattr(config, "workerinput", {}).get("loadgroup"):
        config.option.loadgroup = True
    if not hasattr(config, "workerinput"):
        take_build_lock(config, state)
        if state.clean:
            notice = Output(stream_writer(sys.stderr), "plain")
            clean_build(build_config, state.report_dir, notice.line, notice.status)
    config.pluginmanager.register(RepeatedSetupFailures(), "build-suite-repeated-failures")
    config.pluginmanager.register(PhaseCounter(record, state.started), "build-suite-phase-counter")
    # SIGTERM ends the build like Ctrl-C, so the finally blocks remove containers and write the reports.
    if not hasattr(config, "workerinput"):
        signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    return state


MARKEXPR_WORDS = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def check_marker_expression(expression: str) -> None:
    """Reject a -m expression that names a marker no phase has, instead of deselecting everything."""
    for word in MARKEXPR_WORDS.findall(expression):
        if word not in ("and", "or", "not") and word not in MARKERS:
            raise pytest.UsageError(
                f"-m {expression!r}: unknown marker {word!r}; the build's markers are {', '.join(MARKERS)}")


def take_build_lock(config: pytest.Config, state: BuildSession) -> None:
    """Serialise builds of one project; the lock sits beside its configuration file."""
    lock = BuildLock(state.config.root, state.record.build_id)
    notice = Output(stream_writer(sys.stderr), "plain")
    try:
        lock.acquire(wait=config.getoption("lock") == "wait", on_wait=notice.status, interval=3.0)
    except BuildSuiteError as error:
        raise pytest.UsageError(str(error)) from None
    state.lock = lock


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(BUILD_SESSION, None)
    if state is not None and state.lock is not None:
        state.lock.release()


def _note_late_signal(signum: int, frame: object) -> None:
    sys.stderr.write(f"build-suite: signal {signum} received while writing the reports; finishing them first\n")


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:
    """Give every pytest-xdist worker the controller's build id, so all share one."""
    session = node.config.stash.get(BUILD_SESSION, None)
    if session is not None:
        node.workerinput["build_id"] = session.record.build_id
        node.workerinput["loadgroup"] = node.config.getoption("dist", "no") == "loadgroup"


def phase_of_nodeid(nodeid: str) -> str | None:
    """Return the phase of a test from its module's name: test_<phase>.py or test_<phase>_<topic>.py.

    The node id is all the xdist controller has, so the phase is read from it rather than from the item.
    """
    stem = Path(nodeid.split("::")[0]).stem
    if not stem.startswith("test_"):
        return None
    phase = stem[len("test_"):].split("_")[0]
    return phase if phase in PHASES else None


def phase_of(item: pytest.Item) -> str | None:
    return phase_of_nodeid(item.nodeid)


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config,
                                  items: list[pytest.Item]) -> None:
    if build_session(config) is None:
        return
    for item in items:
        phase = phase_of(item)
        if phase is None:
            continue
        item.add_marker(pytest.mark.full)
        item.add_marker(getattr(pytest.mark, PHASE_MARKER.get(phase, phase)))
    # Tests run in phase order; the fixtures still build each prerequisite a phase needs.
    items.sort(key=lambda item: PHASES.index(phase_of(item)) if phase_of(item) else len(PHASES))


def engine_summary() -> str:
    """Return the engine line of the header: its kind, version and URL, or why none responded."""
    try:
        connection = connect_engine()
    except BuildSuiteError:
        return "unreachable (the environment phase says why)"
    try:
        return f"{connection.kind} {connection.version} (API {connection.api_version}) at {connection.url}"
    finally:
        connection.close()


def pytest_collection_finish(session: pytest.Session) -> None:
    state = build_session(session.config)
    reporter = session.config.pluginmanager.getplugin("terminalreporter")
    if state is None or reporter is None:
        return
    phases = [name for name in PHASES if any(phase_of(item) == name for item in session.items)]
    state.engine_description = engine_summary()
    for line in header_lines(state.record.build_id, str(state.config.path), state.engine_description, phases):
        reporter.write_line(line)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    state = build_session(item.config)
    phase = phase_of(item)
    if state is not None and phase is not None:
        state.record.running_phase = phase
        result = state.record.phases[phase]
        if result.start is None:
            result.start = time.monotonic() - state.started
    yield


class RepeatedSetupFailures:
    """Shortens a prerequisite's failure where every later test that needs it reports it again.

    pytest raises a failed session fixture again in the setup of each test that requests it, so one
    broken wheelhouse would print its whole message once per later test. The first test keeps the
    full message; the others name that test and repeat only the first line.
    """

    def __init__(self) -> None:
        self.first: dict[str, str] = {}

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo):
        report = yield
        if report.when != "setup" or not report.failed or call.excinfo is None:
            return report
        text = str(call.excinfo.value)
        first = self.first.setdefault(text, report.nodeid)
        if first != report.nodeid:
            headline = text.splitlines()[0] if text else call.excinfo.typename
            report.longrepr = f"not run: a prerequisite failed in {first}, which shows the cause:\n  {headline}"
        return report


class PhaseCounter:
    """Counts each test's outcome into its phase; under xdist it runs on the controller."""

    def __init__(self, record: BuildRecord, started: float) -> None:
        self.record = record
        self.started = started

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        phase = phase_of_nodeid(report.nodeid)
        if phase is None:
            return
        result = self.record.phases[phase]
        if result.start is None:
            # The xdist controller runs no pytest_runtest_protocol, so the phase starts at its first report.
            result.start = max(0.0, time.monotonic() - self.started - report.duration)
        if report.when == "call" or (report.when == "setup" and not report.passed):
            self.record.add_test(phase, report.outcome, 0.0)
        elif report.when == "teardown" and report.failed:
            self.record.add_test(phase, "failed", 0.0)
        result.duration += report.duration


def finish_record(state: BuildSession, exit_status: int) -> None:
    """Set the finish time and outcome; called again by each report writer, so all agree."""
    record = state.record
    record.duration = time.monotonic() - state.started
    record.finished = utc_now()
    record.outcome = build_outcome(int(exit_status), record.phases)
    if record.outcome != "interrupted":
        record.running_phase = None


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    state = build_session(session.config)
    if state is None:
        return
    if not hasattr(session.config, "workerinput"):
        # The tests are over: a late SIGTERM must not interrupt the report writers half-way.
        signal.signal(signal.SIGTERM, _note_late_signal)
    else:
        # xdist sends workeroutput to the controller after this hook, where pytest_testnodedown merges it.
        session.config.workeroutput["build_sections"] = state.record.to_json_sections()
    finish_record(state, exitstatus)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:  # pragma: no cover - called by pytest-xdist only
    """Merge an xdist worker's report sections (images, containers, findings) into the controller's record."""
    state = node.config.stash.get(BUILD_SESSION, None)
    sections = getattr(node, "workeroutput", {}).get("build_sections")
    if state is not None and sections:
        state.record.merge_sections(sections)


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    state = build_session(config)
    if state is None or hasattr(config, "workerinput"):
        return
    terminalreporter.section("build summary")
    for line in summary_lines(state.record, state.record.artifacts):
        terminalreporter.write_line(line)


