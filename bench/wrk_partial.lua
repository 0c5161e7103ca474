-- Counts 200 answers that are partial (a part failed: the body has an "errors" member), which
-- wrk alone would count as successes. Used by `python -m bench` (bench/_load.py).
local threads = {}

function setup(thread)
    table.insert(threads, thread)
end

-- Its arguments (after the URL), when given: the method and the body of every request.
function init(args)
    partial = 0
    if args[1] then
        wrk.method = args[1]
        wrk.body = args[2]
    end
end

function response(status, headers, body)
    if status == 200 and string.find(body, '"errors":', 1, true) then
        partial = partial + 1
    end
end

function done(summary, latency, requests)
    local total = 0
    for _, thread in ipairs(threads) do
        total = total + thread:get("partial")
    end
    io.write(string.format("Partial answers: %d\n", total))
end
