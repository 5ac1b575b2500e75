-- wrk script of `make bench`: POST a 200-byte JSON object (a channel message).
-- The URL and the Authorization and x-tenant-id headers come from the command line.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"text":"' .. string.rep("x", 200 - 11) .. '"}'
