# shellcheck shell=sh
# %preun of forensic-collector: $1 is the number of instances left (0 = erase, 1 = upgrade).
# On erase, disable and stop the unit (a capture in progress aborts its upload and leaves no
# manifest). On upgrade, leave it running: the new binary runs from the next start.
if [ "$1" -eq 0 ]; then
    systemctl --no-reload disable --now forensic-collector.service >/dev/null 2>&1 || :
fi
