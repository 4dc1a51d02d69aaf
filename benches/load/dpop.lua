-- wrk script: DPoP load with single-use proofs. $PROOFS_FILE has one request per line,
-- "<access token>\t<DPoP proof>" (made by gen_proofs.py right before the run, since a proof's
-- iat must be within 60 s). Lines are read lazily (the file can hold hundreds of thousands of
-- ~650-byte proofs) and each is used once. Running out would mean replaying proofs, which the
-- gateway must refuse: the script then starts over but counts it, and done() reports
--   LUA sent=<requests generated> proofs_exhausted=<times the file wrapped>
-- so run.sh can flag the run. Meant for `wrk -t1`.
local threads = {}

function setup(thread)
   threads[#threads + 1] = thread
end

function init(args)
   local file = assert(os.getenv("PROOFS_FILE"), "PROOFS_FILE is not set")
   f = assert(io.open(file, "r"))
   host = wrk.headers["Host"]
   sent = 0
   wrapped = 0
end

function request()
   local line = f:read("*l")
   if not line then
      wrapped = wrapped + 1
      f:seek("set", 0)
      line = f:read("*l")
   end
   local tab = line:find("\t", 1, true)
   sent = sent + 1
   return wrk.format(nil, nil, { ["Host"] = host,
                                 ["Authorization"] = "DPoP " .. line:sub(1, tab - 1),
                                 ["DPoP"] = line:sub(tab + 1) })
end

function done(summary, latency, requests)
   local total, wraps = 0, 0
   for _, t in ipairs(threads) do
      total = total + (t:get("sent") or 0)
      wraps = wraps + (t:get("wrapped") or 0)
   end
   io.write(string.format("LUA sent=%d proofs_exhausted=%d\n", total, wraps))
end
