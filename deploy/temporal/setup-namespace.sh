#!/bin/sh
# One-shot of docker-compose.yml (service temporal-setup, image
# temporalio/admin-tools), run once the server answers: registers the
# namespace and fkrollout's search attributes (all Keyword). Idempotent: an
# existing namespace or attribute is left as it is. The worker would add
# missing attributes itself (worker/main.go), but the fkrollout CLI's list
# queries and the UI need them before the first rollout.
#
# Environment: TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE (the temporal CLI reads
# both), FKROLLOUT_SEARCH_ATTRIBUTES (space separated; worker/compose_test.go
# checks it equals workflows.SearchAttributeNames).
set -eu

: "${TEMPORAL_ADDRESS:=temporal:7233}"
: "${TEMPORAL_NAMESPACE:=default}"
: "${FKROLLOUT_SEARCH_ATTRIBUTES:?FKROLLOUT_SEARCH_ATTRIBUTES must list the search attributes}"
export TEMPORAL_ADDRESS TEMPORAL_NAMESPACE

# retry N CMD...: run CMD until it succeeds, at most N times, 2 s apart.
retry() {
  n=$1
  shift
  i=1
  until "$@"; do
    if [ "${i}" -ge "${n}" ]; then
      echo "gave up after ${n} tries: $*" >&2
      return 1
    fi
    i=$((i + 1))
    sleep 2
  done
}

echo "waiting for the Temporal server at ${TEMPORAL_ADDRESS}"
retry 90 temporal operator cluster health

if temporal operator namespace describe --namespace "${TEMPORAL_NAMESPACE}" >/dev/null 2>&1; then
  echo "namespace ${TEMPORAL_NAMESPACE} exists"
else
  echo "creating namespace ${TEMPORAL_NAMESPACE}"
  retry 10 temporal operator namespace create --namespace "${TEMPORAL_NAMESPACE}" --retention 72h
fi

# A new namespace takes a few seconds to reach every service's cache; until
# then adding search attributes to it fails, hence the retries.
has_attribute() {
  temporal operator search-attribute list --namespace "${TEMPORAL_NAMESPACE}" | grep -qw "$1"
}
add_attribute() {
  has_attribute "$1" || temporal operator search-attribute create --namespace "${TEMPORAL_NAMESPACE}" --name "$1" --type Keyword
}
for name in ${FKROLLOUT_SEARCH_ATTRIBUTES}; do
  retry 30 add_attribute "${name}"
  echo "search attribute ${name} (Keyword) registered"
done
echo "namespace ${TEMPORAL_NAMESPACE} is ready for fkrollout"
