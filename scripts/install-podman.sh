#!/usr/bin/env bash
# Install what building and running the container images needs on a Debian/Ubuntu machine
# without a Docker engine: podman, the runc runtime (crun fails on cgroups hybrid hosts),
# debootstrap (to make the local Debian base image) and the uid-mapping helpers.
# Idempotent and quiet: does nothing when every tool is already there.
set -euo pipefail

need=()
command -v podman >/dev/null 2>&1 || need+=(podman)
command -v runc >/dev/null 2>&1 || need+=(runc)
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
command -v newuidmap >/dev/null 2>&1 || need+=(uidmap)
command -v catatonit >/dev/null 2>&1 || need+=(catatonit)  # `run --init`: a PID 1 that forwards signals
[ ${#need[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  SUDO=sudo
else
  SUDO=
fi
export DEBIAN_FRONTEND=noninteractive
# Other jobs may hold the dpkg lock: wait for it rather than fail.
$SUDO apt-get -qq -o DPkg::Lock::Timeout=600 update >/dev/null
$SUDO apt-get -qq -o DPkg::Lock::Timeout=600 install -y --no-install-recommends \
  podman runc debootstrap uidmap catatonit fuse-overlayfs slirp4netns containernetworking-plugins \
  ca-certificates >/dev/null 2> >(grep -v '^debconf: delaying package configuration' >&2)
command -v podman >/dev/null && command -v runc >/dev/null && command -v debootstrap >/dev/null
