# Shared by scripts/bench and scripts/soak (sourced): small helpers and the real sign-in and
# token flow by curl against a Gotthard at $G_BASE with the client $CLIENT_ID ($G_BASIC),
# accounts bench0…benchN@example.com with $PASSWORD. Needs $LIB and $REDIRECT_URI.

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
json_field() { python3 -c 'import json,sys; v=json.load(sys.stdin).get(sys.argv[1]); sys.exit(1) if v is None else print(v)' "$1"; }
wait_http() { # URL: up to 20 s
  for _ in $(seq 1 100); do curl -fs -o /dev/null --max-time 1 "$1" && return 0; sleep 0.2; done
  return 1
}
rss_kib() { awk -v f="$2:" '$1 == f {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

# PKCE S256 (a fixed pair is fine for a benchmark), state, nonce.
VERIFIER=bench-code-verifier-0123456789abcdefghijklmnopqrstuvwxyz
CHALLENGE=$(printf '%s' "$VERIFIER" | openssl dgst -sha256 -binary | base64 | tr '+/' '-_' | tr -d '=')
authorize_url() {
  printf '%s/oauth2/authorize?response_type=code&client_id=%s&redirect_uri=%s&scope=openid%%20profile%%20email%%20offline_access&state=bench&nonce=n%s&code_challenge=%s&code_challenge_method=S256' \
    "$G_BASE" "$CLIENT_ID" "$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$REDIRECT_URI")" "$RANDOM" "$CHALLENGE"
}
# g_sign_in JAR: authorize → /login form → POST /login → back to authorize; the session
# cookie stays in JAR.
g_sign_in() {
  local jar=$1 loc page csrf next answer
  loc=$(curl -s -o /dev/null -w '%{redirect_url}' -b "$jar" -c "$jar" "$(authorize_url)")
  [[ "$loc" == *"/login?"* ]] || { echo "authorize without a session did not redirect to /login: '$loc'" >&2; return 1; }
  page=$(curl -s -b "$jar" -c "$jar" "$loc")
  csrf=$(python3 "$LIB/form_field.py" csrf <<<"$page") || return 1
  next=$(python3 "$LIB/form_field.py" next <<<"$page") || return 1
  answer=$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' -b "$jar" -c "$jar" \
    --data-urlencode "email=bench0@example.com" --data-urlencode "password=$PASSWORD" \
    --data-urlencode "csrf=$csrf" --data-urlencode "next=$next" "$G_BASE/login")
  [[ "$answer" == 303* ]] || { echo "POST /login answered '$answer'" >&2; return 1; }
}
# g_tokens JAR: one more authorization code with the signed-in session, exchanged: the token
# response (JSON) on stdout.
g_tokens() {
  local jar=$1 loc code
  loc=$(curl -s -o /dev/null -w '%{redirect_url}' -b "$jar" -c "$jar" "$(authorize_url)")
  code=$(sed -nE 's/.*[?&]code=([^&]*).*/\1/p' <<<"$loc")
  [ -n "$code" ] || { echo "authorize with a session gave no code: '$loc'" >&2; return 1; }
  local answer
  answer=$(curl -s -w '\n%{http_code}' -H "Authorization: $G_BASIC" -d grant_type=authorization_code -d "code=$code" \
    --data-urlencode "redirect_uri=$REDIRECT_URI" -d "code_verifier=$VERIFIER" "$G_BASE/oauth2/token")
  [ "${answer##*$'\n'}" = 200 ] || { echo "the code exchange answered ${answer##*$'\n'}: ${answer%$'\n'*}" >&2; return 1; }
  printf '%s\n' "${answer%$'\n'*}"
}
