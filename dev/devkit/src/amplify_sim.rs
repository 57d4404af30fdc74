//! Amplify's AppSync simulator serving the resolvers Amplify's GraphQL transformer generates for
//! the seeds' model (`dev/amplify-sim/`, a pinned npm package): where it is, whether it is
//! installed, its command line and the lines it prints when ready.

use std::path::PathBuf;

use crate::processes::workspace_root;

/// The package's directory.
pub fn amplify_sim_dir() -> PathBuf {
    workspace_root().join("dev/amplify-sim")
}

/// The script the local stack starts, and the mark by which it recognises the process.
pub const AMPLIFY_SIM_SCRIPT: &str = "amplify-sim/serve.cjs";

/// `node` (`UC_NODE` overrides), checked to be there with the package's pinned modules
/// installed; the error says how to install them.
pub fn amplify_sim_node() -> Result<PathBuf, String> {
    let installed = amplify_sim_dir().join("node_modules/.package-lock.json");
    if !installed.exists() {
        return Err(format!(
            "Amplify's AppSync simulator is not installed ({} is missing): run `make amplify-sim` \
             (make test and make demo do it for you)",
            installed.display()
        ));
    }
    Ok(std::env::var_os("UC_NODE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("node")))
}

/// The simulator's command line (after `node`): on 127.0.0.1:`port` (0 = any free one), its
/// DynamoDB data source on `dynamodb_endpoint` (moto), the model tables created there.
/// DynamoDB credentials come from the environment (`AWS_ACCESS_KEY_ID`, ...).
pub fn amplify_sim_args(port: u16, dynamodb_endpoint: &str, region: &str) -> Vec<String> {
    vec![
        workspace_root()
            .join("dev")
            .join(AMPLIFY_SIM_SCRIPT)
            .display()
            .to_string(),
        "--port".into(),
        port.to_string(),
        "--dynamodb-endpoint".into(),
        dynamodb_endpoint.into(),
        "--region".into(),
        region.into(),
    ]
}

/// What the simulator printed before `READY <url>`: one `MODEL_TABLE <type> <table>` line per
/// model. `None` until the READY line is there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmplifySimReady {
    pub graphql_url: String,
    /// (model type, table name), in the order printed.
    pub model_tables: Vec<(String, String)>,
}

impl AmplifySimReady {
    /// Reads the simulator's output so far.
    pub fn parse(output: &str) -> Option<Self> {
        let mut model_tables = Vec::new();
        for line in output.lines() {
            if let Some(rest) = line.trim().strip_prefix("MODEL_TABLE ") {
                if let Some((model, table)) = rest.split_once(' ') {
                    model_tables.push((model.to_owned(), table.to_owned()));
                }
            } else if let Some(url) = crate::standin::parse_ready_line(line) {
                return Some(Self {
                    graphql_url: url,
                    model_tables,
                });
            }
        }
        None
    }

    /// The table of model `model` (e.g. "UserProfile").
    pub fn table_of(&self, model: &str) -> Option<&str> {
        self.model_tables
            .iter()
            .find(|(m, _)| m == model)
            .map(|(_, t)| t.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ready_output_names_the_url_and_the_tables() {
        let output = "MODEL_TABLE UserProfile UserProfile-localapi-NONE\nREADY http://127.0.0.1:4000/graphql\n";
        let ready = AmplifySimReady::parse(output).unwrap();
        assert_eq!(ready.graphql_url, "http://127.0.0.1:4000/graphql");
        assert_eq!(
            ready.table_of("UserProfile"),
            Some("UserProfile-localapi-NONE")
        );
        assert_eq!(ready.table_of("Other"), None);
        assert_eq!(
            AmplifySimReady::parse("MODEL_TABLE UserProfile T\n"),
            None,
            "not ready before READY"
        );
    }
}
