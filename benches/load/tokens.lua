-- wrk script: one request per line of $TOKENS_FILE (an access token per line), cycled in order,
-- sent as "Authorization: <$TOKEN_SCHEME or Bearer> <token>". Requests are formatted once in
-- init(), so the per-request cost in wrk is a table lookup. Meant for `wrk -t1` (each wrk
-- thread would start at the first token). done() prints one line that run.sh parses:
--   LUA sent=<requests generated> tokens=<lines> distinct=<distinct tokens sent>
local threads = {}

function setup(thread)
   threads[#threads + 1] = thread
end

function init(args)
   local file = assert(os.getenv("TOKENS_FILE"), "TOKENS_FILE is not set")
   local scheme = os.getenv("TOKEN_SCHEME") or "Bearer"
   reqs = {}
   for line in io.lines(file) do
      if #line > 0 then
         reqs[#reqs + 1] = wrk.format(nil, nil, { ["Host"] = wrk.headers["Host"],
                                                  ["Authorization"] = scheme .. " " .. line })
      end
   end
   n = #reqs
   assert(n > 0, "no tokens in " .. file)
   i = 0
   sent = 0
end

function request()
   i = i + 1
   if i > n then i = 1 end
   sent = sent + 1
   return reqs[i]
end

function done(summary, latency, requests)
   local total, tokens = 0, 0
   for _, t in ipairs(threads) do
      total = total + (t:get("sent") or 0)
      tokens = t:get("n") or tokens
   end
   io.write(string.format("LUA sent=%d tokens=%d distinct=%d\n", total, tokens, math.min(total, tokens)))
end
