//! Where the lab reads the profiles the worker made, whichever GraphQL backend the stack runs:
//! the stand-in's control API, or the model table Amplify's resolvers write (moto's DynamoDB,
//! `PROFILE_MODEL_TABLE`). Reading the table rather than the API shows an item exactly as the
//! resolver stored it (`profileOwner` in full, which Amplify's read resolvers shorten).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{Map, Value};
use uc_devkit::StandInControl;

use crate::local::{GraphqlBackend, PROFILE_MODEL_TABLE, StackEnv};

pub enum StoredProfiles {
    StandIn(StandInControl),
    ModelTable {
        dynamodb: aws_sdk_dynamodb::Client,
        table: String,
    },
}

impl StoredProfiles {
    /// The profiles' store of the stack `env` describes.
    pub async fn of(env: &StackEnv) -> anyhow::Result<Self> {
        Ok(match GraphqlBackend::of(env)? {
            GraphqlBackend::StandIn => {
                Self::StandIn(StandInControl::new(env.get("APPSYNC_GRAPHQL_URL")?))
            }
            GraphqlBackend::Amplify => Self::ModelTable {
                dynamodb: aws_sdk_dynamodb::Client::new(&env.sdk_config().await?),
                table: env.get(PROFILE_MODEL_TABLE)?.to_owned(),
            },
        })
    }

    /// Every stored profile as a JSON object (strings, numbers and booleans as such).
    pub async fn all(&self) -> anyhow::Result<Vec<Value>> {
        match self {
            Self::StandIn(control) => Ok(control.profiles().await),
            Self::ModelTable { dynamodb, table } => {
                let items: Vec<HashMap<String, AttributeValue>> = dynamodb
                    .scan()
                    .table_name(table)
                    .into_paginator()
                    .items()
                    .send()
                    .collect::<Result<_, _>>()
                    .await
                    .map_err(|e| anyhow::anyhow!("scan {table}: {}", uc_ops::aws_message(&e)))?;
                Ok(items.iter().map(item_json).collect())
            }
        }
    }
}

/// A DynamoDB item as JSON: the scalar types a model's item holds; others as null.
pub fn item_json(item: &HashMap<String, AttributeValue>) -> Value {
    let mut object = Map::new();
    for (name, value) in item {
        let value = match value {
            AttributeValue::S(s) => Value::String(s.clone()),
            AttributeValue::N(n) => n
                .parse::<i64>()
                .map(Value::from)
                .or_else(|_| n.parse::<f64>().map(Value::from))
                .unwrap_or(Value::Null),
            AttributeValue::Bool(b) => Value::Bool(*b),
            _ => Value::Null,
        };
        object.insert(name.clone(), value);
    }
    Value::Object(object)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_item_reads_as_json() {
        let item = HashMap::from([
            ("id".to_owned(), AttributeValue::S("s".into())),
            ("_version".to_owned(), AttributeValue::N("1".into())),
            ("_deleted".to_owned(), AttributeValue::Bool(false)),
            ("gone".to_owned(), AttributeValue::Null(true)),
        ]);
        assert_eq!(
            item_json(&item),
            serde_json::json!({"id": "s", "_version": 1, "_deleted": false, "gone": null})
        );
    }
}
