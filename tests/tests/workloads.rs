//! Workloads as kubectl users meet them: applying upstream's example manifests, tables, scale, defaulting, validation errors and `kubectl create deployment|job|cronjob`.

use k1s_tests::Server;

/// A server without controllers or scheduler: these tests are about what the API itself does
/// with workload objects (status stays as written).
fn server() -> (tempfile::TempDir, Server) {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(
        tmp.path().join("data"),
        &[
            "--ephemeral",
            "--disable-controller-manager",
            "--disable-scheduler",
        ],
    )
    .unwrap();
    (tmp, server)
}

fn write(dir: &std::path::Path, name: &str, contents: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path.display().to_string()
}

/// The documentation's examples (nginx Deployment, frontend ReplicaSet, web StatefulSet,
/// fluentd DaemonSet, pi Job, hello CronJob) and a minimal `web` Deployment.
const EXAMPLES: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: nginx-deployment
  labels:
    app: nginx
spec:
  replicas: 3
  selector:
    matchLabels:
      app: nginx
  template:
    metadata:
      labels:
        app: nginx
    spec:
      containers:
      - name: nginx
        image: nginx:1.14.2
        ports:
        - containerPort: 80
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels:
    app: web
spec:
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: nginx
        image: nginx
---
apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: frontend
  labels:
    app: guestbook
    tier: frontend
spec:
  replicas: 3
  selector:
    matchLabels:
      tier: frontend
  template:
    metadata:
      labels:
        tier: frontend
    spec:
      containers:
      - name: php-redis
        image: us-docker.pkg.dev/google-samples/containers/gke/gb-frontend:v5
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: web
spec:
  selector:
    matchLabels:
      app: nginx
  serviceName: "nginx"
  replicas: 3
  minReadySeconds: 10
  template:
    metadata:
      labels:
        app: nginx
    spec:
      terminationGracePeriodSeconds: 10
      containers:
      - name: nginx
        image: registry.k8s.io/nginx-slim:0.24
        ports:
        - containerPort: 80
          name: web
        volumeMounts:
        - name: www
          mountPath: /usr/share/nginx/html
  volumeClaimTemplates:
  - metadata:
      name: www
    spec:
      accessModes: [ "ReadWriteOnce" ]
      storageClassName: "my-storage-class"
      resources:
        requests:
          storage: 1Gi
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: fluentd-elasticsearch
  labels:
    k8s-app: fluentd-logging
spec:
  selector:
    matchLabels:
      name: fluentd-elasticsearch
  template:
    metadata:
      labels:
        name: fluentd-elasticsearch
    spec:
      tolerations:
      - key: node-role.kubernetes.io/control-plane
        operator: Exists
        effect: NoSchedule
      containers:
      - name: fluentd-elasticsearch
        image: quay.io/fluentd_elasticsearch/fluentd:v5.0.1
        resources:
          limits:
            memory: 200Mi
          requests:
            cpu: 100m
            memory: 200Mi
        volumeMounts:
        - name: varlog
          mountPath: /var/log
      terminationGracePeriodSeconds: 30
      volumes:
      - name: varlog
        hostPath:
          path: /var/log
---
apiVersion: batch/v1
kind: Job
metadata:
  name: pi
spec:
  template:
    spec:
      containers:
      - name: pi
        image: perl:5.34.0
        command: ["perl",  "-Mbignum=bpi", "-wle", "print bpi(2000)"]
      restartPolicy: Never
  backoffLimit: 4
---
apiVersion: batch/v1
kind: CronJob
metadata:
  name: hello
spec:
  schedule: "* * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          containers:
          - name: hello
            image: busybox:1.28
            imagePullPolicy: IfNotPresent
            command:
            - /bin/sh
            - -c
            - date; echo Hello from the Kubernetes cluster
          restartPolicy: OnFailure
"#;

const APPLIED: &str = "deployment.apps/nginx-deployment {}\ndeployment.apps/web {}\nreplicaset.apps/frontend {}\nstatefulset.apps/web {}\ndaemonset.apps/fluentd-elasticsearch {}\njob.batch/pi {}\ncronjob.batch/hello {}\n";

/// Cells of a `kubectl get` line (columns are at least three spaces apart).
fn cells(line: &str) -> Vec<&str> {
    line.split("   ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect()
}

/// The table printed for one kind: its header cells and each row's cells.
fn table<'a>(out: &'a str, first_cell: &str) -> (Vec<&'a str>, Vec<Vec<&'a str>>) {
    let section = out
        .split("\n\n")
        .find(|section| section.lines().skip(1).any(|r| r.starts_with(first_cell)))
        .unwrap_or_else(|| panic!("no table with {first_cell} in\n{out}"));
    let mut lines = section.lines().filter(|l| !l.is_empty());
    let header = cells(lines.next().unwrap_or_default());
    (header, lines.map(cells).collect())
}

#[test]
fn apply_examples_print_tables_and_scale() {
    let (tmp, s) = server();
    let manifest = write(tmp.path(), "examples.yaml", EXAMPLES);
    assert_eq!(
        s.kubectl_ok(&["apply", "-f", &manifest]).unwrap(),
        APPLIED.replace("{}", "created")
    );
    // As upstream: the claim templates list is replaced as a whole, and the stored one carries
    // defaults the manifest lacks, so kubectl always sends it; the object does not change.
    assert_eq!(
        s.kubectl_ok(&["apply", "-f", &manifest]).unwrap(),
        APPLIED.replace("{}", "unchanged").replace(
            "statefulset.apps/web unchanged",
            "statefulset.apps/web configured"
        )
    );
    assert_eq!(
        s.kubectl_ok(&[
            "get",
            "sts",
            "web",
            "-o",
            "jsonpath={.metadata.generation} {.spec.volumeClaimTemplates[0].status.phase}"
        ])
        .unwrap(),
        "1 Pending"
    );
    let edited = write(
        tmp.path(),
        "edited.yaml",
        &EXAMPLES.replace("image: nginx:1.14.2", "image: nginx:1.16.1"),
    );
    let out = s.kubectl_ok(&["apply", "-f", &edited]).unwrap();
    assert!(
        out.starts_with(
            "deployment.apps/nginx-deployment configured\ndeployment.apps/web unchanged\n"
        ),
        "{out}"
    );
    assert_eq!(
        s.kubectl_ok(&[
            "get",
            "deploy",
            "nginx-deployment",
            "-o",
            "jsonpath={.metadata.generation} {.spec.template.spec.containers[0].image}"
        ])
        .unwrap(),
        "2 nginx:1.16.1"
    );

    let out = s
        .kubectl_ok(&["get", "deploy,rs,sts,ds,job,cj", "-o", "wide"])
        .unwrap();
    let (header, rows) = table(&out, "deployment.apps/nginx-deployment");
    assert_eq!(
        header,
        [
            "NAME",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "AGE",
            "CONTAINERS",
            "IMAGES",
            "SELECTOR"
        ]
    );
    assert_eq!(
        [&rows[0][..4], &rows[0][5..]].concat(),
        [
            "deployment.apps/nginx-deployment",
            "0/3",
            "0",
            "0",
            "nginx",
            "nginx:1.16.1",
            "app=nginx"
        ]
    );
    let (header, rows) = table(&out, "replicaset.apps/frontend");
    assert_eq!(
        header,
        [
            "NAME",
            "DESIRED",
            "CURRENT",
            "READY",
            "AGE",
            "CONTAINERS",
            "IMAGES",
            "SELECTOR"
        ]
    );
    assert_eq!(
        [&rows[0][..4], &rows[0][5..]].concat(),
        [
            "replicaset.apps/frontend",
            "3",
            "0",
            "0",
            "php-redis",
            "us-docker.pkg.dev/google-samples/containers/gke/gb-frontend:v5",
            "tier=frontend"
        ]
    );
    let (header, rows) = table(&out, "statefulset.apps/web");
    assert_eq!(header, ["NAME", "READY", "AGE", "CONTAINERS", "IMAGES"]);
    assert_eq!(
        [&rows[0][..2], &rows[0][3..]].concat(),
        [
            "statefulset.apps/web",
            "0/3",
            "nginx",
            "registry.k8s.io/nginx-slim:0.24"
        ]
    );
    let (header, rows) = table(&out, "daemonset.apps/fluentd-elasticsearch");
    assert_eq!(
        header,
        [
            "NAME",
            "DESIRED",
            "CURRENT",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "NODE SELECTOR",
            "AGE",
            "CONTAINERS",
            "IMAGES",
            "SELECTOR"
        ]
    );
    assert_eq!(
        [&rows[0][..7], &rows[0][8..]].concat(),
        [
            "daemonset.apps/fluentd-elasticsearch",
            "0",
            "0",
            "0",
            "0",
            "0",
            "<none>",
            "fluentd-elasticsearch",
            "quay.io/fluentd_elasticsearch/fluentd:v5.0.1",
            "name=fluentd-elasticsearch"
        ]
    );
    let (header, rows) = table(&out, "job.batch/pi");
    assert_eq!(
        header,
        [
            "NAME",
            "STATUS",
            "COMPLETIONS",
            "DURATION",
            "AGE",
            "CONTAINERS",
            "IMAGES",
            "SELECTOR"
        ]
    );
    // DURATION is empty until the job starts.
    assert_eq!(&rows[0][..3], ["job.batch/pi", "Running", "0/1"]);
    assert_eq!(&rows[0][4..6], ["pi", "perl:5.34.0"]);
    assert!(
        rows[0][6].starts_with("batch.kubernetes.io/controller-uid="),
        "{rows:?}"
    );
    let (header, rows) = table(&out, "cronjob.batch/hello");
    assert_eq!(
        header,
        [
            "NAME",
            "SCHEDULE",
            "TIMEZONE",
            "SUSPEND",
            "ACTIVE",
            "LAST SCHEDULE",
            "AGE",
            "CONTAINERS",
            "IMAGES",
            "SELECTOR"
        ]
    );
    assert_eq!(
        [&rows[0][..6], &rows[0][7..]].concat(),
        [
            "cronjob.batch/hello",
            "* * * * *",
            "<none>",
            "False",
            "0",
            "<none>",
            "hello",
            "busybox:1.28",
            "<none>"
        ]
    );
    // The default columns stop at AGE.
    let plain = s.kubectl_ok(&["get", "sts"]).unwrap();
    assert_eq!(
        cells(plain.lines().next().unwrap()),
        ["NAME", "READY", "AGE"]
    );

    // Everything above is in the `all` category.
    let all = s.kubectl_ok(&["get", "all", "-o", "name"]).unwrap();
    for name in [
        "deployment.apps/web",
        "replicaset.apps/frontend",
        "statefulset.apps/web",
        "daemonset.apps/fluentd-elasticsearch",
        "job.batch/pi",
        "cronjob.batch/hello",
    ] {
        assert!(all.lines().any(|l| l == name), "{name} missing from\n{all}");
    }

    // Defaulted fields.
    assert_eq!(
        s.kubectl_ok(&[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.spec.replicas} {.spec.strategy.type} {.spec.strategy.rollingUpdate.maxSurge} {.spec.strategy.rollingUpdate.maxUnavailable} {.spec.revisionHistoryLimit} {.spec.progressDeadlineSeconds} {.spec.template.spec.restartPolicy} {.spec.template.spec.containers[0].imagePullPolicy} {.metadata.generation} {.status}"
        ])
        .unwrap(),
        "1 RollingUpdate 25% 25% 10 600 Always Always 1 {}"
    );
    assert_eq!(
        s.kubectl_ok(&[
            "get",
            "job",
            "pi",
            "-o",
            "jsonpath={.spec.completions} {.spec.parallelism} {.spec.backoffLimit} {.spec.completionMode} {.spec.suspend} {.spec.podReplacementPolicy} {.spec.manualSelector} {.metadata.labels.job-name}"
        ])
        .unwrap(),
        "1 1 4 NonIndexed false TerminatingOrFailed false pi"
    );
    assert_eq!(
        s.kubectl_ok(&[
            "get",
            "cj",
            "hello",
            "-o",
            "jsonpath={.spec.concurrencyPolicy} {.spec.suspend} {.spec.successfulJobsHistoryLimit} {.spec.failedJobsHistoryLimit}"
        ])
        .unwrap(),
        "Allow false 3 1"
    );
    assert_eq!(
        s.kubectl_ok(&[
            "get",
            "sts",
            "web",
            "-o",
            "jsonpath={.spec.podManagementPolicy} {.spec.updateStrategy} {.spec.persistentVolumeClaimRetentionPolicy.whenDeleted} {.spec.revisionHistoryLimit} {.status.replicas}"
        ])
        .unwrap(),
        r#"OrderedReady {"rollingUpdate":{"partition":0},"type":"RollingUpdate"} Retain 10 0"#
    );
    assert_eq!(
        s.kubectl_ok(&[
            "get",
            "ds",
            "fluentd-elasticsearch",
            "-o",
            "jsonpath={.spec.updateStrategy} {.metadata.annotations.deprecated\\.daemonset\\.template\\.generation}"
        ])
        .unwrap(),
        r#"{"rollingUpdate":{"maxSurge":0,"maxUnavailable":1},"type":"RollingUpdate"} 1"#
    );

    // Scale through the scale subresource: the spec changes, so the generation moves.
    assert_eq!(
        s.kubectl_ok(&["scale", "deployment", "web", "--replicas=3"])
            .unwrap(),
        "deployment.apps/web scaled\n"
    );
    let scale = s
        .kubectl_ok(&[
            "get",
            "--raw",
            "/apis/apps/v1/namespaces/default/deployments/web/scale",
        ])
        .unwrap();
    assert!(
        scale.contains(r#""kind":"Scale","apiVersion":"autoscaling/v1""#)
            && scale.contains(r#""spec":{"replicas":3}"#)
            && scale.contains(r#""selector":"app=web""#),
        "{scale}"
    );
    assert_eq!(
        s.kubectl_ok(&[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.spec.replicas} {.metadata.generation}"
        ])
        .unwrap(),
        "3 2"
    );
    assert_eq!(
        s.kubectl_ok(&["scale", "sts", "web", "--replicas=1"])
            .unwrap(),
        "statefulset.apps/web scaled\n"
    );
    assert_eq!(
        s.kubectl_ok(&[
            "get",
            "rs",
            "--field-selector",
            "status.replicas=0",
            "-o",
            "name"
        ])
        .unwrap(),
        "replicaset.apps/frontend\n"
    );
    assert_eq!(
        s.kubectl_ok(&[
            "get",
            "jobs",
            "--field-selector",
            "status.successful=0",
            "-o",
            "name"
        ])
        .unwrap(),
        "job.batch/pi\n"
    );
}

#[test]
fn invalid_workloads_are_rejected_as_upstream_rejects_them() {
    let (tmp, s) = server();
    let mismatch = write(
        tmp.path(),
        "mismatch.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: bad\nspec:\n  selector:\n    matchLabels:\n      app: api\n  template:\n    metadata:\n      labels:\n        app: web\n    spec:\n      containers:\n      - name: nginx\n        image: nginx\n",
    );
    let err = s.kubectl_err(&["apply", "-f", &mismatch]).unwrap();
    assert!(
        err.contains(r#"The Deployment "bad" is invalid: spec.template.metadata.labels: Invalid value: map[string]string{"app":"web"}: `selector` does not match template `labels`"#),
        "{err}"
    );
    let raw = s.curl(
        "application/json",
        "/apis/apps/v1/namespaces/default/deployments",
        r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"bad"},"spec":{"template":{"metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"name":"nginx","image":"nginx"}]}}}}"#,
    );
    assert!(raw.ends_with("\n422"), "{raw}");
    assert!(
        raw.contains(r#""message":"Deployment.apps \"bad\" is invalid: [spec.selector: Required value, spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"web\"}: `selector` does not match template `labels`]""#),
        "{raw}"
    );

    // The selector of an apps/v1 workload is immutable.
    let v1 = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  selector:\n    matchLabels:\n      app: web\n  template:\n    metadata:\n      labels:\n        app: web\n        tier: front\n    spec:\n      containers:\n      - name: nginx\n        image: nginx\n";
    let v1_path = write(tmp.path(), "web.yaml", v1);
    s.kubectl_ok(&["apply", "-f", &v1_path]).unwrap();
    let v2 = write(
        tmp.path(),
        "web2.yaml",
        &v1.replace(
            "      app: web\n  template",
            "      app: web\n      tier: front\n  template",
        ),
    );
    let err = s.kubectl_err(&["apply", "-f", &v2]).unwrap();
    assert!(
        err.contains(r#"The Deployment "web" is invalid: spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{"app":"web", "tier":"front"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"#),
        "{err}"
    );

    // Status goes through /status, validated as upstream validates it.
    let err = s
        .kubectl_err(&[
            "patch",
            "deploy",
            "web",
            "--subresource=status",
            "--type=merge",
            "-p",
            r#"{"status":{"replicas":1,"readyReplicas":2}}"#,
        ])
        .unwrap();
    assert!(
        err.contains(r#"The Deployment "web" is invalid: status.readyReplicas: Invalid value: 2: cannot be greater than status.replicas"#),
        "{err}"
    );
    s.kubectl_ok(&[
        "patch",
        "deploy",
        "web",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"replicas":1,"readyReplicas":1,"updatedReplicas":1,"availableReplicas":1}}"#,
    ])
    .unwrap();
    let out = s
        .kubectl_ok(&["get", "deploy", "web", "--no-headers"])
        .unwrap();
    assert_eq!(&cells(&out)[..4], ["web", "1/1", "1", "1"], "{out}");
    assert_eq!(
        s.kubectl_ok(&[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.metadata.generation}"
        ])
        .unwrap(),
        "1"
    );

    let job = write(
        tmp.path(),
        "job.yaml",
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: pi\nspec:\n  template:\n    spec:\n      containers:\n      - name: pi\n        image: perl\n",
    );
    let err = s.kubectl_err(&["apply", "-f", &job]).unwrap();
    assert!(
        err.contains(r#"The Job "pi" is invalid: spec.template.spec.restartPolicy: Required value: valid values: "OnFailure", "Never""#),
        "{err}"
    );
    let cron = write(
        tmp.path(),
        "cron.yaml",
        "apiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: hello\nspec:\n  schedule: \"61 * * * *\"\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          containers:\n          - name: hello\n            image: busybox\n          restartPolicy: OnFailure\n",
    );
    let err = s.kubectl_err(&["apply", "-f", &cron]).unwrap();
    assert!(
        err.contains(r#"The CronJob "hello" is invalid: spec.schedule: Invalid value: "61 * * * *": end of range (61) above maximum (59): 61"#),
        "{err}"
    );
    let err = s
        .kubectl_err(&["scale", "deployment", "web", "--replicas=-1"])
        .unwrap();
    assert!(err.contains("--replicas=COUNT"), "{err}");
}

/// `kubectl get -o yaml` of an object with what differs between two creations (uid,
/// timestamps, resourceVersion, namespace) blanked out.
fn normalized(s: &Server, kind: &str, name: &str, namespace: &str) -> String {
    let yaml = s
        .kubectl_ok(&["get", kind, name, "-n", namespace, "-o", "yaml"])
        .unwrap();
    let uid = s
        .kubectl_ok(&[
            "get",
            kind,
            name,
            "-n",
            namespace,
            "-o",
            "jsonpath={.metadata.uid}",
        ])
        .unwrap();
    yaml.replace(&uid, "UID")
        .lines()
        .filter(|l| {
            let t = l.trim_start();
            !(t.starts_with("creationTimestamp: \"")
                || t.starts_with("resourceVersion:")
                || t.starts_with("namespace:"))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn kubectl_create_makes_what_the_manifest_makes() {
    let (tmp, s) = server();
    s.kubectl_ok(&["create", "namespace", "yaml"]).unwrap();
    let manifest = write(
        tmp.path(),
        "equivalent.yaml",
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels:
    app: web
spec:
  replicas: 1
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: nginx
        image: nginx
---
apiVersion: batch/v1
kind: Job
metadata:
  name: pi
spec:
  template:
    spec:
      containers:
      - name: pi
        image: perl
      restartPolicy: Never
---
apiVersion: batch/v1
kind: CronJob
metadata:
  name: hello
spec:
  schedule: "*/1 * * * *"
  jobTemplate:
    metadata:
      name: hello
    spec:
      template:
        spec:
          containers:
          - name: hello
            image: busybox
          restartPolicy: OnFailure
"#,
    );
    s.kubectl_ok(&["create", "-n", "yaml", "-f", &manifest])
        .unwrap();
    // These send protobuf bodies.
    assert_eq!(
        s.kubectl_ok(&["create", "deployment", "web", "--image=nginx"])
            .unwrap(),
        "deployment.apps/web created\n"
    );
    assert_eq!(
        s.kubectl_ok(&["create", "job", "pi", "--image=perl"])
            .unwrap(),
        "job.batch/pi created\n"
    );
    assert_eq!(
        s.kubectl_ok(&[
            "create",
            "cronjob",
            "hello",
            "--image=busybox",
            "--schedule=*/1 * * * *"
        ])
        .unwrap(),
        "cronjob.batch/hello created\n"
    );
    for (kind, name) in [("deployment", "web"), ("job", "pi"), ("cronjob", "hello")] {
        assert_eq!(
            normalized(&s, kind, name, "default"),
            normalized(&s, kind, name, "yaml"),
            "{kind}/{name}"
        );
    }
    // A job made from the CronJob's template is owned by it.
    assert_eq!(
        s.kubectl_ok(&["create", "job", "manual", "--from=cronjob/hello"])
            .unwrap(),
        "job.batch/manual created\n"
    );
    assert_eq!(
        s.kubectl_ok(&[
            "get",
            "job",
            "manual",
            "-o",
            "jsonpath={.metadata.ownerReferences[0].kind} {.metadata.annotations.cronjob\\.kubernetes\\.io/instantiate} {.spec.template.spec.restartPolicy} {.metadata.labels.job-name}"
        ])
        .unwrap(),
        "CronJob manual OnFailure manual"
    );
    let yaml = normalized(&s, "deployment", "web", "default");
    assert!(yaml.contains("      creationTimestamp: null\n"), "{yaml}");
}

#[test]
fn replication_controllers_and_pod_templates() {
    let (tmp, s) = server();
    let manifest = write(
        tmp.path(),
        "rc.yaml",
        "apiVersion: v1\nkind: ReplicationController\nmetadata:\n  name: nginx\nspec:\n  replicas: 3\n  template:\n    metadata:\n      labels:\n        app: nginx\n    spec:\n      containers:\n      - name: nginx\n        image: nginx\n        ports:\n        - containerPort: 80\n---\napiVersion: v1\nkind: PodTemplate\nmetadata:\n  name: tmpl\ntemplate:\n  metadata:\n    labels:\n      app: x\n  spec:\n    containers:\n    - name: c\n      image: busybox\n",
    );
    assert_eq!(
        s.kubectl_ok(&["apply", "-f", &manifest]).unwrap(),
        "replicationcontroller/nginx created\npodtemplate/tmpl created\n"
    );
    // The selector and the labels default to the template's labels.
    assert_eq!(
        s.kubectl_ok(&[
            "get",
            "rc",
            "nginx",
            "-o",
            "jsonpath={.spec.selector} {.metadata.labels} {.status}"
        ])
        .unwrap(),
        r#"{"app":"nginx"} {"app":"nginx"} {"replicas":0}"#
    );
    let out = s.kubectl_ok(&["get", "rc", "-o", "wide"]).unwrap();
    let (header, rows) = table(&out, "nginx");
    assert_eq!(
        header,
        [
            "NAME",
            "DESIRED",
            "CURRENT",
            "READY",
            "AGE",
            "CONTAINERS",
            "IMAGES",
            "SELECTOR"
        ]
    );
    assert_eq!(
        [&rows[0][..4], &rows[0][5..]].concat(),
        ["nginx", "3", "0", "0", "nginx", "nginx", "app=nginx"]
    );
    assert_eq!(
        s.kubectl_ok(&["scale", "rc", "nginx", "--replicas=1"])
            .unwrap(),
        "replicationcontroller/nginx scaled\n"
    );
    assert_eq!(
        s.kubectl_ok(&[
            "get",
            "rc",
            "nginx",
            "-o",
            "jsonpath={.spec.replicas} {.metadata.generation}"
        ])
        .unwrap(),
        "1 2"
    );
    let out = s.kubectl_ok(&["get", "podtemplates"]).unwrap();
    assert_eq!(
        out.lines().map(cells).collect::<Vec<_>>(),
        [
            vec!["NAME", "CONTAINERS", "IMAGES", "POD LABELS"],
            vec!["tmpl", "c", "busybox", "app=x"]
        ]
    );
}
