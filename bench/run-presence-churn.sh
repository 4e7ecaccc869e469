#!/usr/bin/env bash
# The full-size presence churn (issue 12): 3 rc-chat nodes on one
# redis-server, 300 users with up to 3 tabs each opening and closing at
# random for about a minute, observers coming and going; at rest every
# observer's view must equal Redis', which must equal the open tabs.
# The test command runs the same test scaled down.
#
#   bench/run-presence-churn.sh [BUILD_DIR]   (default: build/)
#
# Needs the chat tests' node_modules (npm ci in tests/integration/chat).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
export RC_CHAT=$build/examples/chat/rc-chat
[[ -x $RC_CHAT ]] || { echo "no $RC_CHAT: build first" >&2; exit 1; }
export PRESENCE_CHURN_USERS=${PRESENCE_CHURN_USERS:-300}
export PRESENCE_CHURN_TABS=${PRESENCE_CHURN_TABS:-3}
export PRESENCE_CHURN_STEPS=${PRESENCE_CHURN_STEPS:-4000}
export PRESENCE_CHURN_STEP_MS=${PRESENCE_CHURN_STEP_MS:-15}
cd "$root/tests/integration/chat"
exec node --test --test-concurrency=1 --test-name-pattern='churn' \
    presence.test.mjs
