//! template.yaml against the code it deploys: every function crate has a resource, every variable
//! the functions read is set, every route the routers serve is routed (with the JWT authorizer
//! where the design puts it), the tables are the ones the adapters create, and each function's
//! policy names only its own resources.
//!
//! CloudFormation's short tags (`!Ref X`, `!GetAtt X.Arn`, `!Sub "..."`) load as their plain
//! argument, so `!GetAtt RunsTable.Arn` reads `RunsTable.Arn` here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use yaml_rust2::{Yaml, YamlLoader};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn template() -> Yaml {
    let text = std::fs::read_to_string(root().join("template.yaml")).expect("read template.yaml");
    YamlLoader::load_from_str(&text)
        .expect("template.yaml is YAML")
        .remove(0)
}

fn resources(template: &Yaml) -> Vec<(String, &Yaml)> {
    template["Resources"]
        .as_hash()
        .expect("Resources")
        .iter()
        .map(|(k, v)| (k.as_str().unwrap().to_owned(), v))
        .collect()
}

fn of_type<'a>(template: &'a Yaml, kind: &str) -> BTreeMap<String, &'a Yaml> {
    resources(template)
        .into_iter()
        .filter(|(_, r)| r["Type"].as_str() == Some(kind))
        .collect()
}

/// The function resources by their crate name (`CodeUri: functions/<name>`).
fn functions(template: &Yaml) -> BTreeMap<String, (String, &Yaml)> {
    of_type(template, "AWS::Serverless::Function")
        .into_iter()
        .map(|(id, r)| {
            let uri = r["Properties"]["CodeUri"].as_str().expect("CodeUri");
            let name = uri
                .strip_prefix("functions/")
                .expect("CodeUri functions/<name>");
            (name.to_owned(), (id, r))
        })
        .collect()
}

fn strings(value: &Yaml) -> Vec<String> {
    match value {
        Yaml::String(s) => vec![s.clone()],
        Yaml::Integer(i) => vec![i.to_string()],
        Yaml::Array(items) => items.iter().flat_map(strings).collect(),
        _ => Vec::new(),
    }
}

#[test]
fn every_function_crate_has_a_rust_arm64_function_resource() {
    let template = template();
    let functions = functions(&template);
    let mut crates: BTreeSet<String> = ["api", "event-hook", "schedule", "worker"]
        .into_iter()
        .map(str::to_owned)
        .collect();
    for entry in std::fs::read_dir(root().join("functions")).expect("functions/") {
        let entry = entry.unwrap();
        if entry.path().join("Cargo.toml").is_file() {
            crates.insert(entry.file_name().to_string_lossy().into_owned());
        }
    }
    assert_eq!(
        functions.keys().cloned().collect::<BTreeSet<_>>(),
        crates,
        "template.yaml functions vs crates in functions/"
    );
    let globals = &template["Globals"]["Function"];
    assert_eq!(globals["Runtime"].as_str(), Some("provided.al2023"));
    assert_eq!(strings(&globals["Architectures"]), vec!["arm64"]);
    assert_eq!(globals["Handler"].as_str(), Some("bootstrap"));
    for (name, (id, resource)) in &functions {
        assert_eq!(
            resource["Metadata"]["BuildMethod"].as_str(),
            Some("rust-cargolambda"),
            "{id}"
        );
        assert_eq!(
            resource["Metadata"]["BuildProperties"]["Binary"].as_str(),
            Some(name.as_str()),
            "{id}: the binary is the crate's name"
        );
    }
}

#[test]
fn every_variable_the_functions_read_is_set() {
    let source =
        std::fs::read_to_string(root().join("shared/aws/src/lambda.rs")).expect("read lambda.rs");
    let code = source.split("#[cfg(test)]").next().unwrap();
    let mut read = BTreeSet::new();
    for (at, _) in code.match_indices("IDFLOW_") {
        let name: String = code[at..]
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        read.insert(name);
    }
    assert!(read.contains("IDFLOW_RUNS_TABLE"), "{read:?}");
    let template = template();
    let set: BTreeSet<String> = template["Globals"]["Function"]["Environment"]["Variables"]
        .as_hash()
        .expect("Globals environment")
        .keys()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect();
    let missing: Vec<_> = read.difference(&set).collect();
    assert!(
        missing.is_empty(),
        "read by lambda.rs but not set: {missing:?}"
    );
    for name in [
        "IDFLOW_TABLES_TABLE",
        "IDFLOW_BLOBS_BUCKET",
        "IDFLOW_QUEUE_ARN",
        "IDFLOW_DLQ_ARN",
        "IDFLOW_SCHEDULE_GROUP",
        "IDFLOW_SCHEDULER_ROLE_ARN",
        "IDFLOW_SES_IDENTITY",
        "IDFLOW_OKTA_DOMAIN",
    ] {
        assert!(set.contains(name), "{name} not set");
    }
}

/// `(method, path)` → whether the route carries the JWT authorizer, for one function's HttpApi events.
fn routes(function: &Yaml) -> BTreeMap<(String, String), bool> {
    function["Properties"]["Events"]
        .as_hash()
        .map(|events| {
            events
                .values()
                .filter(|e| e["Type"].as_str() == Some("HttpApi"))
                .map(|e| {
                    let p = &e["Properties"];
                    (
                        (
                            p["Method"].as_str().unwrap().to_owned(),
                            p["Path"].as_str().unwrap().to_owned(),
                        ),
                        p["Auth"]["Authorizer"].as_str() == Some("JwtAuthorizer"),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn every_route_is_routed_with_the_jwt_authorizer_on_admin_and_delegated_routes() {
    let template = template();
    let functions = functions(&template);
    let api = routes(functions["api"].1);
    let mut expected: Vec<(String, String, bool)> = web::admin::admin_routes()
        .into_iter()
        .map(|(method, path, _)| (method.to_string(), path.to_owned(), true))
        .collect();
    expected.extend(
        web::triggers::api_route_table()
            .into_iter()
            .map(|(method, path, jwt)| (method.to_owned(), path.to_owned(), jwt)),
    );
    for (method, path, jwt) in expected {
        assert_eq!(
            api.get(&(method.clone(), path.clone())),
            Some(&jwt),
            "api route {method} {path} (JWT authorizer: {jwt})"
        );
    }
    // The event-hook function takes every path under /hooks/ (one greedy route per method), so a
    // webhook-style trigger needs no template change: each of its routes must lie under that
    // prefix, and none may want the JWT authorizer (a kind authenticates its own callers, as Okta's
    // hook secret does), since the greedy route carries none.
    let hooks = routes(functions["event-hook"].1);
    let table = web::triggers::hook_route_table();
    assert!(!table.is_empty(), "the hooks surface serves routes");
    for (method, path, jwt) in table {
        assert!(
            path.starts_with("/hooks/") && path.len() > "/hooks/".len(),
            "event-hook route {method} {path} lies under /hooks/"
        );
        assert!(
            !jwt,
            "event-hook route {method} {path} needs no JWT authorizer"
        );
        assert_eq!(
            hooks.get(&(method.to_owned(), "/hooks/{proxy+}".to_owned())),
            Some(&false),
            "event-hook function routes {method} /hooks/{{proxy+}} without an authorizer"
        );
    }
    assert_eq!(
        hooks.len(),
        2,
        "the event-hook function has only its two prefix routes: {hooks:?}"
    );
    let authorizer = &of_type(&template, "AWS::Serverless::HttpApi")["HttpApi"]["Properties"]["Auth"]
        ["Authorizers"]["JwtAuthorizer"]["JwtConfiguration"];
    assert_eq!(authorizer["issuer"].as_str(), Some("JwtIssuer"));
    assert_eq!(strings(&authorizer["audience"]), vec!["JwtAudience"]);
}

#[test]
fn the_queue_redrives_to_the_dead_letter_queue_and_outlasts_the_worker() {
    let template = template();
    let functions = functions(&template);
    let worker = functions["worker"].1;
    let queues = of_type(&template, "AWS::SQS::Queue");
    let queue = &queues["RunQueue"]["Properties"];
    assert_eq!(
        queue["RedrivePolicy"]["deadLetterTargetArn"].as_str(),
        Some("DeadLetterQueue.Arn")
    );
    assert_eq!(
        queue["RedrivePolicy"]["maxReceiveCount"].as_str(),
        Some("MaxReceiveCount")
    );
    let worker_timeout = worker["Properties"]["Timeout"]
        .as_i64()
        .expect("worker Timeout");
    let visibility = queue["VisibilityTimeout"]
        .as_i64()
        .expect("VisibilityTimeout");
    let lease: i64 =
        template["Globals"]["Function"]["Environment"]["Variables"]["IDFLOW_LEASE_SECONDS"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("IDFLOW_LEASE_SECONDS");
    assert!(
        worker_timeout < lease && lease < visibility,
        "worker timeout {worker_timeout} < lease {lease} < visibility timeout {visibility}"
    );
    let mut sources = BTreeSet::new();
    for event in worker["Properties"]["Events"].as_hash().unwrap().values() {
        assert_eq!(event["Type"].as_str(), Some("SQS"));
        assert_eq!(
            strings(&event["Properties"]["FunctionResponseTypes"]),
            vec!["ReportBatchItemFailures"]
        );
        sources.insert(event["Properties"]["Queue"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        sources,
        BTreeSet::from(["RunQueue.Arn".to_owned(), "DeadLetterQueue.Arn".to_owned()])
    );
    let alarms = of_type(&template, "AWS::CloudWatch::Alarm");
    let alarm = &alarms["DeadLetterAlarm"]["Properties"];
    assert_eq!(
        alarm["MetricName"].as_str(),
        Some("ApproximateNumberOfMessagesVisible")
    );
    assert_eq!(
        alarm["Dimensions"][0]["Value"].as_str(),
        Some("DeadLetterQueue.QueueName")
    );
    assert_eq!(alarm["Threshold"].as_i64(), Some(0));
    assert_eq!(
        alarm["ComparisonOperator"].as_str(),
        Some("GreaterThanThreshold")
    );
}

/// The logical ids a resource string names: `X.Arn`, `${X.Arn}/index/*`, `${X}`.
fn named_resources(resource: &str, ids: &BTreeSet<String>) -> BTreeSet<String> {
    let mut named = BTreeSet::new();
    let head = resource.split('.').next().unwrap_or("");
    if ids.contains(head) {
        named.insert(head.to_owned());
    }
    for part in resource.split("${").skip(1) {
        let name = part.split(['}', '.']).next().unwrap_or("");
        if ids.contains(name) {
            named.insert(name.to_owned());
        }
    }
    named
}

#[test]
fn each_function_may_touch_only_its_own_tables_and_queues() {
    let template = template();
    let ids: BTreeSet<String> = resources(&template).into_iter().map(|(id, _)| id).collect();
    let both = ["RunsTable", "FlowsTable"];
    let expected: BTreeMap<&str, (Vec<&str>, Vec<&str>)> = BTreeMap::from([
        ("api", (both.to_vec(), vec!["RunQueue"])),
        ("event-hook", (both.to_vec(), vec!["RunQueue"])),
        ("schedule", (both.to_vec(), vec!["RunQueue"])),
        (
            "worker",
            (
                vec!["RunsTable", "FlowsTable", "DataTablesTable"],
                vec!["RunQueue", "DeadLetterQueue"],
            ),
        ),
    ]);
    for (name, (_, function)) in functions(&template) {
        let mut tables = BTreeSet::new();
        let mut queues = BTreeSet::new();
        let mut services = BTreeSet::new();
        for policy in function["Properties"]["Policies"]
            .as_vec()
            .expect("Policies")
        {
            for statement in policy["Statement"].as_vec().expect("Statement") {
                let actions = strings(&statement["Action"]);
                let resources = strings(&statement["Resource"]);
                assert!(!resources.is_empty(), "{name}: statement without Resource");
                for action in &actions {
                    services.insert(action.split(':').next().unwrap().to_owned());
                }
                let service = actions[0].split(':').next().unwrap();
                assert!(
                    actions
                        .iter()
                        .all(|a| a.starts_with(&format!("{service}:"))),
                    "{name}: one service per statement: {actions:?}"
                );
                for resource in &resources {
                    assert_ne!(resource, "*", "{name}: `*` resource for {actions:?}");
                    let named = named_resources(resource, &ids);
                    match service {
                        "dynamodb" => {
                            assert_eq!(named.len(), 1, "{name}: {resource} names one table");
                            tables.extend(named);
                        }
                        "sqs" => {
                            assert_eq!(named.len(), 1, "{name}: {resource} names one queue");
                            queues.extend(named);
                        }
                        "s3" => assert!(
                            named == BTreeSet::from(["BlobsBucket".to_owned()])
                                && (resource == "${BlobsBucket.Arn}/history/*"
                                    || (name == "worker"
                                        && (resource == "BlobsBucket.Arn"
                                            || resource == "${BlobsBucket.Arn}/runs/*"))),
                            "{name}: only history values of the bucket, and run values for the worker: {resource}"
                        ),
                        "secretsmanager" => assert!(
                            resource.contains(":secret:${SecretPrefix}*"),
                            "{name}: secrets only under the prefix: {resource}"
                        ),
                        _ => {}
                    }
                }
            }
        }
        let (want_tables, want_queues) = &expected[name.as_str()];
        assert_eq!(
            tables,
            want_tables.iter().map(|s| s.to_string()).collect(),
            "{name}'s tables"
        );
        assert_eq!(
            queues,
            want_queues.iter().map(|s| s.to_string()).collect(),
            "{name}'s queues"
        );
        // Only the worker creates one-time schedules (long waits), sends email and checkpoints
        // runs (whose large values go to the bucket under `runs/`).
        for service in ["scheduler", "iam", "ses"] {
            assert_eq!(
                services.contains(service),
                name == "worker",
                "{name}: {service}"
            );
        }
        // Every function creates or reads runs, whose values too big for an item are in the
        // bucket under `history/`.
        assert!(services.contains("s3"), "{name}: history values");
    }
}

/// The table in template.yaml and the one the adapter's `create_table` made on the emulator must
/// have the same keys, indexes and TTL attribute.
#[tokio::test]
async fn the_tables_match_what_the_adapters_create() {
    let Some(config) = crate::aws::emulator().await else {
        return;
    };
    let client = aws_sdk_dynamodb::Client::new(&config);
    let runs = crate::aws::unique("template-runs");
    aws::DynamoRunStore::create_table(&client, &runs)
        .await
        .expect("create runs table");
    let flows = crate::aws::unique("template-flows");
    aws::DynamoFlowStore::create_table(&client, &flows)
        .await
        .expect("create flows table");
    let data = crate::aws::unique("template-data");
    aws::DynamoTableStore::create_table(&client, &data)
        .await
        .expect("create data tables table");

    let template = template();
    let tables = of_type(&template, "AWS::DynamoDB::Table");
    for (id, created) in [
        ("RunsTable", &runs),
        ("FlowsTable", &flows),
        ("DataTablesTable", &data),
    ] {
        let declared = &tables[id]["Properties"];
        assert_eq!(
            declared["BillingMode"].as_str(),
            Some("PAY_PER_REQUEST"),
            "{id}"
        );
        assert_eq!(
            declared["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"].as_bool(),
            Some(true),
            "{id}"
        );
        let described = client
            .describe_table()
            .table_name(created)
            .send()
            .await
            .expect("describe table")
            .table
            .expect("table");
        let keys = |schema: &Yaml| -> Vec<(String, String)> {
            schema
                .as_vec()
                .unwrap()
                .iter()
                .map(|k| {
                    (
                        k["AttributeName"].as_str().unwrap().to_owned(),
                        k["KeyType"].as_str().unwrap().to_owned(),
                    )
                })
                .collect()
        };
        let actual_keys = |schema: &[aws_sdk_dynamodb::types::KeySchemaElement]| {
            schema
                .iter()
                .map(|k| {
                    (
                        k.attribute_name().to_owned(),
                        k.key_type().as_str().to_owned(),
                    )
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(
            keys(&declared["KeySchema"]),
            actual_keys(described.key_schema()),
            "{id} key schema"
        );
        let declared_attributes: BTreeSet<(String, String)> = declared["AttributeDefinitions"]
            .as_vec()
            .unwrap()
            .iter()
            .map(|a| {
                (
                    a["AttributeName"].as_str().unwrap().to_owned(),
                    a["AttributeType"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        let actual_attributes: BTreeSet<(String, String)> = described
            .attribute_definitions()
            .iter()
            .map(|a| {
                (
                    a.attribute_name().to_owned(),
                    a.attribute_type().as_str().to_owned(),
                )
            })
            .collect();
        assert_eq!(declared_attributes, actual_attributes, "{id} attributes");
        let declared_indexes: BTreeMap<String, (Vec<(String, String)>, String)> =
            declared["GlobalSecondaryIndexes"]
                .as_vec()
                .map(|v| v.as_slice())
                .unwrap_or_default()
                .iter()
                .map(|gsi| {
                    (
                        gsi["IndexName"].as_str().unwrap().to_owned(),
                        (
                            keys(&gsi["KeySchema"]),
                            gsi["Projection"]["ProjectionType"]
                                .as_str()
                                .unwrap()
                                .to_owned(),
                        ),
                    )
                })
                .collect();
        let actual_indexes: BTreeMap<String, (Vec<(String, String)>, String)> = described
            .global_secondary_indexes()
            .iter()
            .map(|gsi| {
                (
                    gsi.index_name().unwrap_or_default().to_owned(),
                    (
                        actual_keys(gsi.key_schema()),
                        gsi.projection()
                            .and_then(|p| p.projection_type())
                            .map(|t| t.as_str().to_owned())
                            .unwrap_or_default(),
                    ),
                )
            })
            .collect();
        assert_eq!(declared_indexes, actual_indexes, "{id} indexes");

        let ttl = client
            .describe_time_to_live()
            .table_name(created)
            .send()
            .await
            .expect("describe TTL")
            .time_to_live_description
            .and_then(|d| d.attribute_name);
        assert_eq!(
            declared["TimeToLiveSpecification"]["AttributeName"]
                .as_str()
                .map(str::to_owned),
            ttl,
            "{id} TTL attribute"
        );
    }
    // The data tables' table: the same `pk`/`sk` string keys as the flows table.
    let data = &tables["DataTablesTable"]["Properties"];
    assert_eq!(
        data["KeySchema"],
        tables["FlowsTable"]["Properties"]["KeySchema"]
    );
    assert_eq!(data["BillingMode"].as_str(), Some("PAY_PER_REQUEST"));
}

/// The outputs the README and `idflow deploy --stack` rely on.
#[test]
fn the_outputs_name_what_deploy_and_okta_need() {
    let template = template();
    let outputs: BTreeSet<String> = template["Outputs"]
        .as_hash()
        .expect("Outputs")
        .keys()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect();
    for name in [
        "ApiUrl",
        "EventHookUrl",
        "RunsTable",
        "FlowsTable",
        "TablesTable",
        "QueueUrl",
        "DeadLetterQueueUrl",
        // Read by `idflow deploy --stack` (aws::deploy::StackOutputs).
        "ScheduleGroup",
        "SchedulerRoleArn",
        "ScheduleFunctionArn",
    ] {
        assert!(outputs.contains(name), "output {name} missing");
    }
    assert!(
        template["Outputs"]["EventHookUrl"]["Value"]
            .as_str()
            .is_some_and(|url| url.ends_with("/hooks/okta")),
        "EventHookUrl must point at the hooks route"
    );
}
