//! Custom resource definitions through kubectl: a CRD applied from YAML, its custom resources applied, listed with printer columns, explained, validated, defaulted, scaled, and removed with the definition.

use k1s_tests::Server;

fn server() -> (tempfile::TempDir, Server) {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path().join("data"), &["--ephemeral"]).unwrap();
    (tmp, server)
}

fn write(dir: &std::path::Path, name: &str, contents: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path.display().to_string()
}

const CRD: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: crontabs.stable.example.com
spec:
  group: stable.example.com
  scope: Namespaced
  names:
    plural: crontabs
    singular: crontab
    kind: CronTab
    shortNames: [ct]
    categories: [all]
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
      scale:
        specReplicasPath: .spec.replicas
        statusReplicasPath: .status.replicas
    additionalPrinterColumns:
    - name: Spec
      type: string
      description: The cron spec defining the interval a CronJob is run
      jsonPath: .spec.cronSpec
    - name: Replicas
      type: integer
      jsonPath: .spec.replicas
    - name: Image
      type: string
      priority: 1
      jsonPath: .spec.image
    - name: Age
      type: date
      jsonPath: .metadata.creationTimestamp
    schema:
      openAPIV3Schema:
        type: object
        description: CronTab runs an image on a schedule.
        properties:
          spec:
            type: object
            description: What the cron tab runs and when.
            x-kubernetes-validations:
            - rule: "self.replicas <= 10"
            required: [cronSpec]
            properties:
              cronSpec:
                type: string
                pattern: '^(\d+|\*)(/\d+)?(\s+(\d+|\*)(/\d+)?){4}$'
              image:
                type: string
                default: busybox
              replicas:
                type: integer
                minimum: 0
                default: 1
          status:
            type: object
            properties:
              replicas:
                type: integer
"#;

const CRONTAB: &str = "apiVersion: stable.example.com/v1
kind: CronTab
metadata:
  name: every-minute
spec:
  cronSpec: '* * * * */5'
  replicas: 2
";

#[test]
fn custom_resources_live_and_die_with_their_definition() {
    let (tmp, s) = server();
    let crd = write(tmp.path(), "crd.yaml", CRD);
    let out = s.kubectl().args(["apply", "-f", &crd]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Warning:") && stderr.contains("self.replicas <= 10"),
        "the unenforced rule is named: {stderr}"
    );
    assert_eq!(
        s.kubectl_ok(&["apply", "-f", &crd]).unwrap().trim(),
        "customresourcedefinition.apiextensions.k8s.io/crontabs.stable.example.com unchanged"
    );
    let established = s
        .kubectl_ok(&[
            "get",
            "crd",
            "crontabs.stable.example.com",
            "-o",
            r#"jsonpath={.status.conditions[?(@.type=="Established")].status}"#,
        ])
        .unwrap();
    assert_eq!(established, "True");
    let resources = s.kubectl_ok(&["api-resources"]).unwrap();
    assert!(
        resources
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["crontabs", "ct", "stable.example.com/v1", "true", "CronTab"]),
        "{resources}"
    );

    let tab = write(tmp.path(), "tab.yaml", CRONTAB);
    assert_eq!(
        s.kubectl_ok(&["apply", "-f", &tab]).unwrap().trim(),
        "crontab.stable.example.com/every-minute created"
    );
    assert_eq!(
        s.kubectl_ok(&["apply", "-f", &tab]).unwrap().trim(),
        "crontab.stable.example.com/every-minute unchanged"
    );
    // Defaults from the schema; generation 1.
    assert_eq!(
        s.kubectl_ok(&[
            "get",
            "ct",
            "every-minute",
            "-o",
            "jsonpath={.spec.image} {.metadata.generation}"
        ])
        .unwrap(),
        "busybox 1"
    );
    // Printer columns, narrow and wide.
    let table = s.kubectl_ok(&["get", "crontabs"]).unwrap();
    let mut lines = table.lines();
    assert_eq!(
        lines.next().unwrap().split_whitespace().collect::<Vec<_>>(),
        ["NAME", "SPEC", "REPLICAS", "AGE"]
    );
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(row[..7], ["every-minute", "*", "*", "*", "*", "*/5", "2"]);
    let wide = s.kubectl_ok(&["get", "ct", "-o", "wide"]).unwrap();
    assert!(wide.lines().next().unwrap().contains("IMAGE"), "{wide}");
    assert!(
        s.kubectl_ok(&["get", "all"])
            .unwrap()
            .contains("crontab.stable.example.com/every-minute")
    );

    // explain reads the published schema.
    let explained = s.kubectl_ok(&["explain", "crontab.spec"]).unwrap();
    assert!(
        explained.contains("What the cron tab runs and when.") && explained.contains("cronSpec"),
        "{explained}"
    );

    // Validation against the schema, with upstream's messages.
    let bad = write(
        tmp.path(),
        "bad.yaml",
        "apiVersion: stable.example.com/v1\nkind: CronTab\nmetadata: {name: bad}\nspec: {cronSpec: nope, replicas: -1}\n",
    );
    let err = s.kubectl_err(&["apply", "-f", &bad]).unwrap();
    assert!(
        err.contains(r#"The CronTab "bad" is invalid"#)
            && err.contains("spec.replicas: Invalid value: -1: spec.replicas in body should be greater than or equal to 0")
            && err.contains("spec.cronSpec: Invalid value: \"nope\": spec.cronSpec in body should match"),
        "{err}"
    );
    let unknown = write(
        tmp.path(),
        "unknown.yaml",
        "apiVersion: stable.example.com/v1\nkind: CronTab\nmetadata: {name: u}\nspec: {cronSpec: '* * * * *', colour: red}\n",
    );
    let err = s.kubectl_err(&["apply", "-f", &unknown]).unwrap();
    assert!(err.contains(r#"unknown field "spec.colour""#), "{err}");

    // The scale subresource and generation.
    s.kubectl_ok(&["scale", "ct", "every-minute", "--replicas=5"])
        .unwrap();
    assert_eq!(
        s.kubectl_ok(&[
            "get",
            "ct",
            "every-minute",
            "-o",
            "jsonpath={.spec.replicas} {.metadata.generation}"
        ])
        .unwrap(),
        "5 2"
    );

    // Deleting the definition deletes its objects and the resource.
    s.kubectl_ok(&["delete", "-f", &crd]).unwrap();
    let err = s.kubectl_err(&["get", "crontabs"]).unwrap();
    // kubectl names the missing type, or (with discovery cached) the failed list.
    assert!(
        err.contains(r#"the server doesn't have a resource type "crontabs""#)
            || err.contains("the server could not find the requested resource"),
        "{err}"
    );
    s.kubectl_ok(&["apply", "-f", &crd]).unwrap();
    let after = s.kubectl_ok(&["get", "crontabs", "-o", "name"]).unwrap();
    assert_eq!(after.trim(), "", "objects went with their definition");
}

#[test]
fn definitions_are_validated_and_survive_restarts() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = Server::start(data.clone(), &[]).unwrap();
    let wrong = write(
        tmp.path(),
        "wrong.yaml",
        &CRD.replace(
            "name: crontabs.stable.example.com",
            "name: wrong.stable.example.com",
        ),
    );
    let err = s.kubectl_err(&["apply", "-f", &wrong]).unwrap();
    assert!(
        err.contains(r#"metadata.name: Invalid value: "wrong.stable.example.com": must be spec.names.plural+"."+spec.group"#),
        "{err}"
    );
    let crd = write(tmp.path(), "crd.yaml", CRD);
    s.kubectl_ok(&["apply", "-f", &crd]).unwrap();
    let tab = write(tmp.path(), "tab.yaml", CRONTAB);
    s.kubectl_ok(&["apply", "-f", &tab]).unwrap();
    s.stop().unwrap();
    let s = Server::start(data, &[]).unwrap();
    assert_eq!(
        s.kubectl_ok(&["get", "ct", "-o", "name"]).unwrap().trim(),
        "crontab.stable.example.com/every-minute"
    );
}
