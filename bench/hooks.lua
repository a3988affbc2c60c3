-- wrk script: POST Okta event hook deliveries of 10 `user.lifecycle.activate` events each, every
-- event with a fresh uuid (idflow starts exactly one run per event uuid, so repeats would be free).
local counter = 0
local threads = {}

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = os.getenv("BENCH_HOOK_SECRET") or "bench-hook-secret"
end

local function event(uuid)
  return '{"uuid":"' .. uuid .. '","published":"2026-01-05T08:00:00.000Z","eventType":"user.lifecycle.activate",'
    .. '"version":"0","severity":"INFO","displayMessage":"Activate Okta user",'
    .. '"actor":{"id":"00uadmin","type":"User","alternateId":"admin@example.com","displayName":"Admin"},'
    .. '"outcome":{"result":"SUCCESS"},'
    .. '"target":[{"id":"00u' .. uuid .. '","type":"User","alternateId":"user' .. uuid .. '@example.com","displayName":"User ' .. uuid .. '"}],'
    .. '"debugContext":{"debugData":{"requestId":"r' .. uuid .. '"}}}'
end

function request()
  local events = {}
  for i = 1, 10 do
    counter = counter + 1
    events[i] = event(string.format("%d-%d-%d", tid, counter, math.random(1, 1000000000)))
  end
  local body = '{"eventType":"com.okta.event_hook","eventTypeVersion":"1.0","cloudEventsVersion":"0.1",'
    .. '"source":"https://example.okta.com/api/v1/eventHooks/who","eventId":"e' .. tid .. '-' .. counter .. '",'
    .. '"eventTime":"2026-01-05T08:00:00.000Z","contentType":"application/json","data":{"events":[' .. table.concat(events, ",") .. ']}}'
  return wrk.format(nil, nil, nil, body)
end
