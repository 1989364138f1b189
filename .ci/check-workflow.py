#!/usr/bin/env python3
"""Checks .github/workflows/ci.yml, which cannot run here: it must be valid
YAML, and its per-lesson matrix must name every test file of tests/Cargo.toml,
so a fork's CI runs every lesson on Linux, macOS and Windows."""

import re
import sys

import yaml

with open(".github/workflows/ci.yml", encoding="utf-8") as f:
    workflow = yaml.safe_load(f)

matrix = workflow["jobs"]["lesson"]["strategy"]["matrix"]
with open("tests/Cargo.toml", encoding="utf-8") as f:
    tests = re.findall(r'^\[\[test\]\]\nname = "([^"]+)"', f.read(), re.M)

problems = []
for os_name in ["ubuntu-latest", "macos-latest", "windows-latest"]:
    if os_name not in matrix["os"]:
        problems.append(f"the matrix lacks {os_name}")
for test in tests:
    if test not in matrix["test"]:
        problems.append(f"the matrix lacks the test file {test}")
for job in ["lint", "lesson", "loadgen-smoke", "book", "publish"]:
    if job not in workflow["jobs"]:
        problems.append(f"no job {job}")
if problems:
    sys.exit("ci.yml: " + "; ".join(problems))
print(f"ci.yml: valid YAML; {len(matrix['test'])} test files x {len(matrix['os'])} systems")
