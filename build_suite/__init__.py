"""build-suite: the plain library under the build phases. It never imports pytest."""

__version__ = "0.1.0"
