use super::*;
use serde_json::json;

fn perms(value: Value) -> Permissions {
    Permissions::parse(value).expect("overrides")
}

fn roles(names: &[&str]) -> Roles {
    Roles::new(
        names
            .iter()
            .map(|n| Role::parse(n).expect("role"))
            .collect(),
    )
    .expect("roles")
}

#[test]
fn admin_may_do_everything_and_qf_what_the_issue_lists() {
    let grants = RoleGrants::default();
    let none = perms(json!({}));
    for p in Permission::CATALOGUE {
        assert!(grants.allows(&roles(&["admin"]), &none, p), "{p}");
    }
    let qf = roles(&["qf"]);
    assert!(grants.allows(&qf, &none, Permission::ICSR_EDIT));
    assert!(grants.allows(&qf, &none, Permission::REPORTS_GENERATE));
    assert!(!grants.allows(&qf, &none, Permission::ICSR_DELETE));
    assert!(!grants.allows(&qf, &none, Permission::USERS_MANAGE));
    assert!(!grants.allows(&roles(&[]), &none, Permission::ICSR_VIEW));
    assert!(!grants.allows(&roles(&["unknown"]), &none, Permission::ICSR_VIEW));
}

#[test]
fn overrides_grant_and_withdraw_action_by_action() {
    let grants = RoleGrants::default();
    let overrides = perms(json!({"icsr": {"delete": true, "edit": false}}));
    let qf = roles(&["qf"]);
    assert!(grants.allows(&qf, &overrides, Permission::ICSR_DELETE));
    assert!(!grants.allows(&qf, &overrides, Permission::ICSR_EDIT));
    assert!(grants.allows(&qf, &overrides, Permission::ICSR_VIEW));
    let admin_without_delete = perms(json!({"icsr": {"delete": false}}));
    assert!(!grants.allows(
        &roles(&["admin"]),
        &admin_without_delete,
        Permission::ICSR_DELETE
    ));
}

#[test]
fn the_effective_map_names_every_action_and_matches_allows() {
    let definitions = BTreeMap::from([(
        "evaluator".to_owned(),
        BTreeMap::from([(
            "signals".to_owned(),
            BTreeMap::from([("assess".to_owned(), true)]),
        )]),
    )]);
    let grants = RoleGrants::with_definitions(&definitions).expect("valid");
    let overrides = perms(json!({"reports": {"generate": false}, "labels": {"print": true}}));
    let user = roles(&["qf", "evaluator"]);
    let map = grants.effective(&user, &overrides);
    assert!(map["icsr"]["view"]);
    assert!(!map["icsr"]["delete"]);
    assert!(!map["reports"]["generate"]);
    assert!(map["signals"]["assess"]);
    assert!(map["labels"]["print"]);
    assert!(!map["users"]["manage"]);
    for p in Permission::CATALOGUE {
        assert_eq!(
            map[p.module][p.action],
            grants.allows(&user, &overrides, p),
            "{p}"
        );
    }
    let admin = grants.effective(&roles(&["admin"]), &perms(json!({})));
    assert!(admin.values().all(|actions| actions.values().all(|a| *a)));
    assert!(admin["signals"]["assess"]);
}

#[test]
fn lacking_weighs_the_caller_after_overrides_and_the_holder_by_roles_and_grants() {
    let definitions = BTreeMap::from([(
        "helpdesk".to_owned(),
        BTreeMap::from([(
            "users".to_owned(),
            BTreeMap::from([("manage".to_owned(), true)]),
        )]),
    )]);
    let grants = RoleGrants::with_definitions(&definitions).expect("valid");
    let (admin, qf, helpdesk) = (roles(&["admin"]), roles(&["qf"]), roles(&["helpdesk"]));
    let none = perms(json!({}));
    fn holder<'a>(roles: &'a Roles, overrides: &'a Permissions) -> Holder<'a> {
        Holder { roles, overrides }
    }

    // A full admin lacks nothing anyone holds, even actions only an override names.
    let labels = perms(json!({"labels": {"print": true}}));
    assert!(
        grants
            .lacking(holder(&admin, &none), holder(&qf, &labels))
            .is_empty()
    );
    assert!(
        grants
            .lacking(holder(&admin, &none), holder(&admin, &none))
            .is_empty()
    );

    // An admin whose users actions were withdrawn lacks them against any admin.
    let no_users = perms(json!({"users": {"view": false, "manage": false}}));
    assert_eq!(
        grants.lacking(holder(&admin, &no_users), holder(&admin, &none)),
        ["users.manage", "users.view"]
    );
    // An admin holds every action of every module, those the caller's overrides name too.
    assert_eq!(
        grants.lacking(
            holder(&admin, &perms(json!({"labels": {"print": false}}))),
            holder(&admin, &none)
        ),
        ["labels.print"]
    );

    // A helpdesk lacks what a qf holds; a qf with users.manage lacks an admin's extras.
    assert_eq!(
        grants.lacking(holder(&helpdesk, &none), holder(&qf, &none)),
        ["icsr.edit", "icsr.view", "reports.generate", "reports.view"]
    );
    let qf_manager = perms(json!({"users": {"manage": true}}));
    assert_eq!(
        grants.lacking(holder(&qf, &qf_manager), holder(&admin, &none)),
        ["audit.view", "icsr.delete", "users.view"]
    );
    assert!(
        grants
            .lacking(holder(&qf, &qf_manager), holder(&qf, &none))
            .is_empty()
    );
    assert!(
        grants
            .lacking(holder(&qf, &qf_manager), holder(&helpdesk, &none))
            .is_empty()
    );

    // The holder holds its roles' grants even where an override withdraws them here, and
    // `true` overrides; `false` overrides grant nothing.
    let neutered = perms(
        json!({"icsr": {"view": false, "edit": false}, "reports": {"view": false, "generate": false}}),
    );
    assert_eq!(
        grants
            .lacking(holder(&helpdesk, &none), holder(&qf, &neutered))
            .len(),
        4
    );
    let withdrawn_only = perms(json!({"audit": {"view": false}}));
    assert!(
        grants
            .lacking(
                holder(&helpdesk, &none),
                holder(&roles(&[]), &withdrawn_only)
            )
            .is_empty()
    );
    assert_eq!(
        grants.lacking(
            holder(&helpdesk, &none),
            holder(&roles(&[]), &perms(json!({"audit": {"view": true}})))
        ),
        ["audit.view"]
    );
    assert!(
        grants
            .lacking(
                holder(&helpdesk, &none),
                holder(&roles(&[]), &Permissions::default())
            )
            .is_empty()
    );
}

#[test]
fn admin_cannot_be_redefined_and_definitions_are_checked() {
    let bad = |name: &str| {
        BTreeMap::from([(
            name.to_owned(),
            BTreeMap::from([(
                "icsr".to_owned(),
                BTreeMap::from([("view".to_owned(), true)]),
            )]),
        )])
    };
    assert!(RoleGrants::with_definitions(&bad("admin")).is_err());
    assert!(RoleGrants::with_definitions(&bad("Not A Role")).is_err());
    let qf_view_only = RoleGrants::with_definitions(&bad("qf")).expect("qf may be redefined");
    assert!(!qf_view_only.allows(&roles(&["qf"]), &perms(json!({})), Permission::ICSR_EDIT));
    assert!(qf_view_only.knows("qf") && qf_view_only.knows("admin"));
    assert!(!qf_view_only.knows("evaluator"));
}

#[test]
fn granted_names_what_the_effective_map_allows_and_nothing_else() {
    let grants = RoleGrants::default();
    assert_eq!(
        grants.granted(&roles(&["qf"]), &perms(json!({"icsr": {"edit": false}}))),
        ["icsr.view", "reports.generate", "reports.view"]
    );
    let admin = grants.granted(&roles(&["admin"]), &Permissions::default());
    assert_eq!(admin.len(), Permission::CATALOGUE.len());
    assert!(admin.contains(&"users.manage".to_owned()));
}
