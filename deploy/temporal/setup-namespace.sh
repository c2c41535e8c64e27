#!/bin/sh
# One-shot job (temporalio/admin-tools): the namespace lienthong runs in and the custom
# search attributes DossierWorkflow upserts (workflows/search_attributes.py; a test
# keeps LIENTHONG_SEARCH_ATTRIBUTES in docker-compose.yml equal to that list).
# Safe to re-run: existing ones are left as they are.
set -eu
: "${TEMPORAL_ADDRESS:?}" "${TEMPORAL_NAMESPACE:?}" "${LIENTHONG_SEARCH_ATTRIBUTES:?}"
export TEMPORAL_ADDRESS

until temporal operator cluster health >/dev/null 2>&1; do
  echo "waiting for the Temporal frontend at $TEMPORAL_ADDRESS"; sleep 2
done

if temporal operator namespace describe --namespace "$TEMPORAL_NAMESPACE" >/dev/null 2>&1; then
  echo "namespace $TEMPORAL_NAMESPACE: exists"
else
  temporal operator namespace create --namespace "$TEMPORAL_NAMESPACE" \
    --retention "${TEMPORAL_NAMESPACE_RETENTION:-30d}" \
    --description "lienthong dossiers"
fi

existing=$(temporal operator search-attribute list --namespace "$TEMPORAL_NAMESPACE")
for attribute in $LIENTHONG_SEARCH_ATTRIBUTES; do   # NAME=Type, space-separated
  name=${attribute%%=*}; kind=${attribute##*=}
  if printf '%s\n' "$existing" | grep -qw "$name"; then
    echo "search attribute $name: exists"
  else
    temporal operator search-attribute create --namespace "$TEMPORAL_NAMESPACE" --name "$name" --type "$kind" --yes
  fi
done
