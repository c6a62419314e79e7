//! Upload validation: not a component, not our world → rejected with the reason.

use refract_host::{HostError, NotAComponent};
use refract_tests::fixtures::fixture;
use refract_tests::sandbox::sandbox;

#[tokio::test]
async fn garbage_and_core_modules_are_rejected_before_compiling() -> anyhow::Result<()> {
    let host = &sandbox()?.strict;
    for (bytes, want) in [
        (b"definitely not wasm".to_vec(), NotAComponent::NotWasm),
        (Vec::new(), NotAComponent::NotWasm),
        // The smallest valid core module: preamble, version 1.
        (b"\0asm\x01\0\0\0".to_vec(), NotAComponent::CoreModule),
    ] {
        match host.upload(&bytes).await {
            Err(HostError::InvalidComponent { reason }) => assert_eq!(reason, want),
            other => panic!("expected InvalidComponent({want:?}), got {other:?}"),
        }
    }
    Ok(())
}

#[tokio::test]
async fn a_truncated_component_does_not_compile() -> anyhow::Result<()> {
    let host = &sandbox()?.strict;
    let mut bytes = fixture("hostile")?;
    bytes.truncate(bytes.len() / 2);
    match host.upload(&bytes).await {
        Err(e @ HostError::Compile { .. }) => {
            assert_eq!(e.kind(), refract_core::ErrorKind::Invalid)
        }
        other => panic!("expected a compile error, got {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn an_unknown_import_is_named() -> anyhow::Result<()> {
    let host = &sandbox()?.strict;
    match host.upload(&fixture("bad-import")?).await {
        Err(HostError::WorldMismatch {
            forbidden_imports,
            missing_exports,
            ..
        }) => {
            assert!(missing_exports.is_empty(), "{missing_exports:?}");
            assert_eq!(forbidden_imports, vec!["evil:probe/raw".to_owned()]);
        }
        other => panic!("expected WorldMismatch, got {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn a_missing_run_export_is_named() -> anyhow::Result<()> {
    let host = &sandbox()?.strict;
    match host.upload(&fixture("no-run")?).await {
        Err(e @ HostError::WorldMismatch { .. }) => {
            let HostError::WorldMismatch {
                missing_exports,
                forbidden_imports,
                ..
            } = &e
            else {
                unreachable!()
            };
            assert_eq!(missing_exports, &vec!["run".to_owned()]);
            assert!(forbidden_imports.is_empty());
            assert!(e.to_string().contains("run"), "{e}");
        }
        other => panic!("expected WorldMismatch, got {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn fixtures_of_our_world_are_accepted_and_stored_once() -> anyhow::Result<()> {
    let sb = sandbox()?;
    let again = sb.strict.upload(&fixture("hostile")?).await?;
    assert_eq!(again, sb.hostile);
    assert!(sb.artifacts.len() >= 2, "an artifact per compiled fixture");
    Ok(())
}

#[tokio::test]
async fn a_guest_without_wasi_imports_is_accepted_and_runs() -> anyhow::Result<()> {
    let sb = sandbox()?;
    let digest = sb.strict.upload(&fixture("minimal")?).await?;
    let (services, _) = refract_tests::sandbox::services(&sb.strict);
    let req = refract_tests::sandbox::call(
        "minimal",
        serde_json::json!({}),
        Default::default(),
        Default::default(),
    );
    let report = sb.strict.run(&digest, req, services).await?;
    match report.outcome {
        refract_host::RunOutcome::Ok(o) => assert_eq!(o.body, "null"),
        other => panic!("expected an output, got {other:?}"),
    }
    Ok(())
}

/// A component built against the released 0.1.1 world (a frozen copy of its WIT) still links
/// and runs on this host, which serves 0.1.6: additions to the world never break older guests.
#[tokio::test]
async fn a_component_of_an_older_world_version_still_runs() -> anyhow::Result<()> {
    use refract_host::{EgressPolicy, Limits, RunOutcome};
    use refract_tests::sandbox::{call, services};
    let host = &sandbox()?.strict;
    let digest = host.upload(&fixture("world-0-1-1")?).await?;
    let (services, _) = services(host);
    let request = call(
        "old",
        serde_json::json!({}),
        Limits::default(),
        EgressPolicy::default(),
    );
    let report = host.run(&digest, request, services).await?;
    match report.outcome {
        RunOutcome::Ok(output) => assert_eq!(output.body, "\"0.1.1\""),
        other => panic!("expected the old component to run, got {other:?}"),
    }
    Ok(())
}
