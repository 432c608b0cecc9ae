# shellcheck shell=sh
# %postun of forensic-collector: let systemd see the unit file added, changed or removed.
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
fi
