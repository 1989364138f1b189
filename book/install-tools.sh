#!/usr/bin/env bash
# Installs the tools that build this book, at the versions the course is
# checked with. This file is the one place those versions are pinned: the
# README tells readers to run it, and .ci/run runs it.
set -euo pipefail

MDBOOK_VERSION=0.5.4
MDBOOK_MERMAID_VERSION=0.17.1

cd "$(dirname "$0")"
# cargo install puts its programs here; make sure we find them afterwards.
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

# Installs crate $1 at version $2 unless `$1 --version` already shows it.
install() {
  if "$1" --version 2>/dev/null | grep -qw "v\?$2"; then
    echo "$1 $2 is installed"
  else
    cargo install --locked "$1" --version "$2"
  fi
}

install mdbook "$MDBOOK_VERSION"
install mdbook-mermaid "$MDBOOK_MERMAID_VERSION"

# Copies mermaid's JavaScript next to book.toml, so the diagrams render
# without a network connection. book.toml already names these files.
mdbook-mermaid install .
