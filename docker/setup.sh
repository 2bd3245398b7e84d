#!/bin/sh
# Gradescope's set-up script, for the "upload autograder" zip (`kit image gradescope ID`).
# Gradescope unpacks the zip into /autograder/source, runs this once while building its image,
# and later runs /autograder/run_autograder for each submission.
set -eu
SOURCE=/autograder/source
if ! python3 -m venv --help >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq python3-venv
fi
python3 -m venv /opt/grader
# The wheelhouse first; the index only for a wheel that does not fit this Python.
/opt/grader/bin/pip install --quiet --find-links "$SOURCE/wheelhouse" tapegrad-kit
rm -rf "$SOURCE/wheelhouse"
# The worker runs as another uid: the checks, the labels and the secret are root's only.
chmod -R go-rwx "$SOURCE"
