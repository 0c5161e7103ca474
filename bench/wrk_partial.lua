-- Counts 200 answers that are partial (a part failed: the body has an "errors" member), which
-- wrk alone would count as successes, and the failed parts themselves (the objects of "errors",
-- each with a "reason", in any answer). Used by `python -m bench` (bench/_load.py).
--
-- With WRK_PATHS_FILE set (one request path a line), the requests rotate over those paths, one
-- after another across the connections, so that requests in flight at once ask for different
-- ids (the throughput and latency scenarios' distinct products).
local threads = {}

function setup(thread)
    table.insert(threads, thread)
end

-- Its arguments (after the URL), when given: the method and the body of every request.
function init(args)
    partial = 0
    failed = 0
    if args[1] then
        wrk.method = args[1]
        wrk.body = args[2]
    end
    local file = os.getenv("WRK_PATHS_FILE")
    if file and file ~= "" then
        -- Built once: each request only picks the next one.
        rotation = {}
        for path in io.lines(file) do
            if path ~= "" then
                table.insert(rotation, wrk.format(nil, path))
            end
        end
        next_index = 0
    end
end

local paths_file = os.getenv("WRK_PATHS_FILE")
if paths_file and paths_file ~= "" then
    -- Defined only when rotating: without it, wrk sends one pre-built request, as before.
    function request()
        next_index = next_index % #rotation + 1
        return rotation[next_index]
    end
end

function response(status, headers, body)
    local at = string.find(body, '"errors":', 1, true)
    if at then
        if status == 200 then
            partial = partial + 1
        end
        local parts = 0
        for _ in string.gmatch(string.sub(body, at), '"reason":') do
            parts = parts + 1
        end
        failed = failed + math.max(parts, 1)
    end
end

function done(summary, latency, requests)
    local total, parts = 0, 0
    for _, thread in ipairs(threads) do
        total = total + thread:get("partial")
        parts = parts + thread:get("failed")
    end
    io.write(string.format("Partial answers: %d\n", total))
    io.write(string.format("Failed parts: %d\n", parts))
end
