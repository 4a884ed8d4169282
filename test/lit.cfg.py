# -*- Python -*-
# lit configuration of the gsa test suite.

import os

import lit.formats
from lit.llvm import llvm_config

config.name = "GSA"
config.test_format = lit.formats.ShTest(not llvm_config.use_lit_shell)
config.suffixes = [".mlir"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.gsa_obj_root, "test")
config.excludes = ["CMakeLists.txt", "lit.cfg.py", "lit.site.cfg.py", "unit", "python", "Inputs"]

config.substitutions.append(("%PATH%", config.environment["PATH"]))
llvm_config.with_system_environment(["HOME", "INCLUDE", "LIB", "TMP", "TEMP"])
llvm_config.use_default_substitutions()

tool_dirs = [config.gsa_tools_dir, config.llvm_tools_dir]
llvm_config.add_tool_substitutions(["gsa-opt", "not", "count"], tool_dirs)
config.substitutions.append(("%gsa_src", config.gsa_src_root))

# ptxas assembles the PTX of the GPU tests; without it they are reported
# UNSUPPORTED (never counted as passing).
if getattr(config, "ptxas", ""):
    config.available_features.add("ptxas")
    config.substitutions.append(("%ptxas", config.ptxas))
else:
    lit_config.note("ptxas not found: the PTX assembly tests are skipped (UNSUPPORTED)")
if getattr(config, "libdevice", ""):
    config.available_features.add("libdevice")
else:
    lit_config.note("libdevice not found: kernels calling math functions are not tested")
llvm_config.add_tool_substitutions(["gsa-compile"], tool_dirs)
