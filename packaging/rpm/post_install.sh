# shellcheck shell=sh
# %post of forensic-collector: $1 is the number of installed instances (1 = first install).
# Enable the unit on the first install only and never start it: started, it would image the disks
# attached to this host. `systemctl enable` works without a running systemd (image builds, chroots).
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
fi
if [ "$1" -eq 1 ]; then
    systemctl enable forensic-collector.service >/dev/null 2>&1 || :
fi
