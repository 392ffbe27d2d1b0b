"""pytest plugin entry point (`pytest11`): suites as test items. Reserved: it registers nothing
yet, so it adds nothing to other projects' test runs."""
