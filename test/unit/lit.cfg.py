# -*- Python -*-
# The GoogleTest suite, run by lit so that one command reports every count.

import lit.formats

config.name = "GSA-Unit"
config.suffixes = []
config.test_source_root = config.unit_test_dir
config.test_exec_root = config.unit_test_dir
config.test_format = lit.formats.GoogleTest(".", "Tests")
