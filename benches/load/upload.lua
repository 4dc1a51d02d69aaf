-- wrk script: POST a body of $UPLOAD_BYTES bytes (default 24 MiB) on every request, with
-- "Authorization: $AUTH_HEADER" when set. The request is formatted once; wrk writes it out
-- in full for each request.
local bytes = tonumber(os.getenv("UPLOAD_BYTES") or "") or 24 * 1024 * 1024
wrk.method = "POST"
wrk.body = string.rep("0123456789abcdef", bytes / 16) .. string.rep("x", bytes % 16)
wrk.headers["Content-Type"] = "application/octet-stream"
local auth = os.getenv("AUTH_HEADER")
if auth and #auth > 0 then
   wrk.headers["Authorization"] = auth
end
