"""Test support shipped with the application, for this project's suite and for QA suites
in other repositories: the pytest plugin (`app.testing.pytest_plugin`, registered through
the `pytest11` entry point as `batchcalls`) and the helpers its fixtures are made of.

Importing this package imports nothing else; docs/qa.md describes the fixtures.
"""
