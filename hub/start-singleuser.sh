#!/bin/sh
# Give the user their own copy of the notebooks on first start (the package stays read-only in
# /opt/e2ee-lab), print the doctor's report to the server log, then run the hub's single-user server.
set -e
if [ ! -d "$HOME/e2ee-lab" ]; then
    mkdir -p "$HOME/e2ee-lab"
    cp -r /opt/e2ee-lab/notebooks "$HOME/e2ee-lab/notebooks"
    chmod -R u+w "$HOME/e2ee-lab"
fi
e2ee-lab doctor || true
exec jupyterhub-singleuser "$@"
