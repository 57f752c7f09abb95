#!/bin/sh
# The external load of the live acceptance run (issue 13): stress-ng (a tool this project did not
# write; Debian package `stress-ng`) in 15 s phases of CPU hogs (1-2 threads) and memory hogs
# (1-2 workers streaming 128 MB), repeated until this script is stopped. Each phase's start is
# written to the file given as the first argument ("<unix time> <phase>"), so a deploy log can be
# split by phase afterwards (its requests carry `t_s` from the session start).
#   sh docs/live/stress-ng-phases.sh runs/live/stress-phases.txt & ; dynscale compare --live ... ; kill %1
set -eu
log=${1:?usage: stress-ng-phases.sh PHASE_LOG}
: > "$log"
trap 'pkill -P $$ stress-ng 2>/dev/null; exit 0' INT TERM
while :; do
    for phase in idle cpu1 cpu2 vm1 idle vm2 cpu1 cpu2; do
        echo "$(date +%s.%N) $phase" >> "$log"
        case $phase in
            idle) sleep 15 ;;
            cpu*) stress-ng --quiet --cpu "${phase#cpu}" --cpu-method int64 --timeout 15s ;;
            vm*) stress-ng --quiet --vm "${phase#vm}" --vm-bytes 128M --vm-keep --timeout 15s ;;
        esac
    done
done
