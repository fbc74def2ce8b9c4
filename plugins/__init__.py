"""pytest plugins of build-suite: the harness, live monitoring, reports and the phase fixtures."""
