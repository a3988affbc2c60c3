-- wrk script: POST a small JSON body, like a webhook.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"user":{"login":"ada@example.com","firstName":"Ada"},"groups":["eng","ops"]}'
