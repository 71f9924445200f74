//! The law as code: Cedar policies decide, per data category, what may leave and what may be
//! held.
//!
//! Each question is `(category, sender, recipient, purpose, legal basis, consent) -> permit or
//! withhold`, asked as a Cedar request: the principal is the sending team, the resource the
//! category, the action `disclose` (outbound) or `hold` (inbound), and everything else the
//! context. Cedar denies whatever no rule permits, and any `forbid` beats every `permit`, so
//! deny-by-default holds whatever files an agency adds. The default pack (`default.cedar`) ships
//! with the node; agencies add their own files, and all are validated against `schema.cedarschema`
//! when loaded: a node never runs on a policy that does not validate.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use cedar_policy::{
    Authorizer, Context, Decision as CedarDecision, Entities, EntityId, EntityTypeName, EntityUid,
    PolicyId, PolicySet, Request, RestrictedExpression, Schema, ValidationMode, Validator,
};
use miette::Diagnostic;

use crate::category::DataCategory;
use crate::purpose::{LegalBasis, Purpose};
use crate::team::{Discipline, Role};

/// The default policy pack.
pub const DEFAULT_PACK: &str = include_str!("default.cedar");
/// The schema every policy is validated against.
pub const SCHEMA: &str = include_str!("schema.cedarschema");
/// The name the default pack is reported under.
pub const DEFAULT_PACK_NAME: &str = "<built-in default pack>";

/// One problem in a policy file, located as an editor would show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyProblem {
    /// The file.
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for PolicyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (Some(line), Some(column)) => {
                write!(f, "{}:{line}:{column}: {}", self.file, self.message)
            }
            (Some(line), None) => write!(f, "{}:{line}: {}", self.file, self.message),
            _ => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// The policy could not be loaded; every problem found is listed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid policy:\n  {}", .problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  "))]
pub struct PolicyError {
    /// Each problem, with file and line.
    pub problems: Vec<PolicyProblem>,
}

/// A party to an exchange, as the policy sees it.
#[derive(Debug, Clone)]
pub struct Party {
    /// Team identity URI.
    pub team: String,
    /// Its federation.
    pub federation: String,
    /// Its role.
    pub role: Role,
    /// Its discipline.
    pub discipline: Discipline,
    /// Whether it may hold criminal-justice information.
    pub cjis_authorized: bool,
}

/// What the consent on file says about one category for this exchange.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConsentVerdict {
    /// A current consent permits it.
    pub permits: bool,
    /// ...and names the recipient team itself.
    pub names_recipient: bool,
}

/// Everything but the category: who, to whom, why, on what basis.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// The sending team.
    pub sender: Party,
    /// The receiving team.
    pub recipient: Party,
    /// Why.
    pub purpose: Purpose,
    /// On what legal basis.
    pub basis: LegalBasis,
    /// A justification of at least a sentence is attached.
    pub justified: bool,
    /// A consultation asks to disclose direct identifiers.
    pub reidentify: bool,
}

/// The question being asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// May the sender disclose this category to the recipient?
    Disclose,
    /// May this node, the recipient, hold this category from the sender?
    Hold,
}

/// The answer for one category.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Permit or withhold.
    pub permitted: bool,
    /// The ids of the rules that decided; empty when nothing permitted (deny by default).
    pub rules: Vec<String>,
    /// The rules' plain-language reasons, or why nothing permitted.
    pub reasons: Vec<String>,
}

/// A loaded, validated policy set. Parsed once; decisions are cheap.
pub struct Policy {
    /// Every rule, from every file.
    set: PolicySet,
    /// Cedar's evaluator.
    authorizer: Authorizer,
    /// `Category::"X"` for each category.
    categories: HashMap<DataCategory, EntityUid>,
    /// `Action::"disclose"` and `Action::"hold"`.
    disclose: EntityUid,
    hold: EntityUid,
    /// Rule id to its @reason.
    reasons: HashMap<String, String>,
    /// Rule id to the file it came from.
    origins: HashMap<String, String>,
    /// Decisions already made. A decision is a pure function of its inputs and the policy
    /// never changes (a reload builds a new `Policy`), so a remembered answer is always the
    /// answer; teams exchange with the same peers on the same bases over and over.
    memo: std::sync::RwLock<HashMap<Question, Decision>>,
}

/// The inputs of one decision, as a cache key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Question {
    action: Action,
    category: DataCategory,
    sender: (String, Role, Discipline, bool),
    recipient: (String, Role, Discipline, bool),
    purpose: Purpose,
    basis: LegalBasis,
    justified: bool,
    reidentify: bool,
    consent: (bool, bool),
    labels: Vec<String>,
}

/// Remembered decisions are dropped wholesale past this many, which bounds memory whatever the
/// traffic; a real federation asks far fewer distinct questions.
const MEMO_LIMIT: usize = 65_536;

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy")
            .field("rules", &self.reasons.len())
            .finish_non_exhaustive()
    }
}

fn problem(file: &str, message: impl Into<String>) -> PolicyProblem {
    PolicyProblem {
        file: file.to_owned(),
        line: None,
        column: None,
        message: message.into(),
    }
}

/// Locates a Cedar diagnostic in its source text.
fn located(file: &str, diagnostic: &dyn Diagnostic, fallback: &str) -> PolicyProblem {
    let mut located = problem(file, fallback);
    let span = diagnostic
        .labels()
        .and_then(|mut labels| labels.next())
        .map(|label| *label.inner());
    if let (Some(span), Some(source)) = (span, diagnostic.source_code())
        && let Ok(contents) = source.read_span(&span, 0, 0)
    {
        located.line = Some(contents.line() + 1);
        located.column = Some(contents.column() + 1);
    }
    if let Some(help) = diagnostic.help() {
        located.message = format!("{}; {help}", located.message);
    }
    located
}

impl Policy {
    /// The default pack alone.
    pub fn default_pack() -> Result<Self, PolicyError> {
        Self::from_sources(&[])
    }

    /// The default pack plus the agency's files, in order.
    pub fn load(files: &[PathBuf]) -> Result<Self, PolicyError> {
        let mut sources = Vec::new();
        let mut problems = Vec::new();
        for file in files {
            match std::fs::read_to_string(file) {
                Ok(text) => sources.push((file.display().to_string(), text)),
                Err(e) => problems.push(problem(
                    &file.display().to_string(),
                    format!("cannot read: {e}"),
                )),
            }
        }
        if !problems.is_empty() {
            return Err(PolicyError { problems });
        }
        Self::from_sources(&sources)
    }

    /// The default pack plus `(name, text)` sources.
    pub fn from_sources(extra: &[(String, String)]) -> Result<Self, PolicyError> {
        let mut problems = Vec::new();
        let schema = Schema::from_cedarschema_str(SCHEMA)
            .map(|(schema, _warnings)| schema)
            .map_err(|e| PolicyError {
                problems: vec![problem("<built-in schema>", e.to_string())],
            })?;
        let mut set = PolicySet::new();
        let mut reasons = HashMap::new();
        let mut origins: HashMap<String, String> = HashMap::new();
        let all = std::iter::once((DEFAULT_PACK_NAME.to_owned(), DEFAULT_PACK.to_owned()))
            .chain(extra.iter().cloned());
        for (name, text) in all {
            let parsed = match PolicySet::from_str(&text) {
                Ok(parsed) => parsed,
                Err(errors) => {
                    for error in errors.iter() {
                        problems.push(located(&name, error, &error.to_string()));
                    }
                    continue;
                }
            };
            for (index, policy) in parsed.policies().enumerate() {
                let id = policy
                    .annotation("id")
                    .map_or_else(|| format!("{name}#{}", index + 1), str::to_owned);
                if let Some(previous) = origins.get(&id) {
                    problems.push(problem(
                        &name,
                        format!("rule id {id:?} is already used in {previous}"),
                    ));
                    continue;
                }
                let reason = policy
                    .annotation("reason")
                    .map_or_else(|| format!("rule {id}"), str::to_owned);
                reasons.insert(id.clone(), reason);
                origins.insert(id.clone(), name.clone());
                if let Err(e) = set.add(policy.new_id(PolicyId::new(&id))) {
                    problems.push(problem(&name, e.to_string()));
                }
            }
            if parsed.templates().next().is_some() {
                problems.push(problem(
                    &name,
                    "templates are not supported; write plain rules",
                ));
            }
        }
        let validation = Validator::new(schema).validate(&set, ValidationMode::Strict);
        for error in validation.validation_errors() {
            let file = origins
                .get(error.policy_id().to_string().as_str())
                .cloned()
                .unwrap_or_default();
            problems.push(located(&file, error, &error.to_string()));
        }
        if !problems.is_empty() {
            return Err(PolicyError { problems });
        }
        let uid = |kind: &str, id: &str| -> Result<EntityUid, PolicyError> {
            let kind = EntityTypeName::from_str(kind).map_err(|e| PolicyError {
                problems: vec![problem("<built-in>", e.to_string())],
            })?;
            Ok(EntityUid::from_type_name_and_id(kind, EntityId::new(id)))
        };
        let categories = DataCategory::ALL
            .into_iter()
            .map(|c| Ok((c, uid("Category", c.as_str())?)))
            .collect::<Result<_, PolicyError>>()?;
        Ok(Self {
            set,
            authorizer: Authorizer::new(),
            categories,
            disclose: uid("Action", "disclose")?,
            hold: uid("Action", "hold")?,
            reasons,
            origins,
            memo: std::sync::RwLock::new(HashMap::new()),
        })
    }

    /// Every rule: id, the file it came from, and its reason.
    pub fn rules(&self) -> Vec<(String, String, String)> {
        let mut rules: Vec<_> = self
            .reasons
            .iter()
            .map(|(id, reason)| {
                (
                    id.clone(),
                    self.origins.get(id).cloned().unwrap_or_default(),
                    reason.clone(),
                )
            })
            .collect();
        rules.sort();
        rules
    }

    /// Asks one question. Anything unexpected (an evaluation error) withholds.
    pub fn decide(
        &self,
        action: Action,
        category: DataCategory,
        exchange: &Exchange,
        consent: ConsentVerdict,
        labels: &[&str],
    ) -> Decision {
        let party = |p: &Party| (p.team.clone(), p.role, p.discipline, p.cjis_authorized);
        let question = Question {
            action,
            category,
            sender: party(&exchange.sender),
            recipient: party(&exchange.recipient),
            purpose: exchange.purpose,
            basis: exchange.basis,
            justified: exchange.justified,
            reidentify: exchange.reidentify,
            consent: (consent.permits, consent.names_recipient),
            labels: labels.iter().map(|l| (*l).to_owned()).collect(),
        };
        if let Some(known) = self
            .memo
            .read()
            .ok()
            .and_then(|m| m.get(&question).cloned())
        {
            return known;
        }
        let decision = self.evaluate(action, category, exchange, consent, labels);
        if let Ok(mut memo) = self.memo.write() {
            if memo.len() >= MEMO_LIMIT {
                memo.clear();
            }
            memo.insert(question, decision.clone());
        }
        decision
    }

    /// Forgets every remembered decision (for benchmarks of the cold path).
    pub fn forget(&self) {
        if let Ok(mut memo) = self.memo.write() {
            memo.clear();
        }
    }

    /// Asks Cedar, without the memo.
    pub fn evaluate(
        &self,
        action: Action,
        category: DataCategory,
        exchange: &Exchange,
        consent: ConsentVerdict,
        labels: &[&str],
    ) -> Decision {
        let withheld = |reason: String| Decision {
            permitted: false,
            rules: Vec::new(),
            reasons: vec![reason],
        };
        let Some(resource) = self.categories.get(&category) else {
            return withheld(format!("{category} is not a known category"));
        };
        let principal = match EntityTypeName::from_str("Team") {
            Ok(kind) => {
                EntityUid::from_type_name_and_id(kind, EntityId::new(&exchange.sender.team))
            }
            Err(_) => return withheld("internal error building the request".into()),
        };
        let action_uid = match action {
            Action::Disclose => self.disclose.clone(),
            Action::Hold => self.hold.clone(),
        };
        let context = match context(exchange, consent, labels) {
            Ok(context) => context,
            Err(e) => {
                tracing::error!(error = %e, "building a policy request failed");
                return withheld("internal error building the request".into());
            }
        };
        let request = match Request::new(principal, action_uid, resource.clone(), context, None) {
            Ok(request) => request,
            Err(e) => {
                tracing::error!(error = %e, "building a policy request failed");
                return withheld("internal error building the request".into());
            }
        };
        let response = self
            .authorizer
            .is_authorized(&request, &self.set, &Entities::empty());
        for error in response.diagnostics().errors() {
            tracing::warn!(%category, error = %error, "policy evaluation error; treated as withhold");
        }
        let rules: Vec<String> = response
            .diagnostics()
            .reason()
            .map(ToString::to_string)
            .collect();
        let reasons: Vec<String> = rules
            .iter()
            .filter_map(|id| self.reasons.get(id).cloned())
            .collect();
        match response.decision() {
            CedarDecision::Allow => Decision {
                permitted: true,
                rules,
                reasons,
            },
            CedarDecision::Deny if rules.is_empty() => withheld(format!(
                "no rule permits {} of {category} to a {} {} team for {} on the {} basis",
                match action {
                    Action::Disclose => "disclosure",
                    Action::Hold => "holding",
                },
                exchange.recipient.discipline,
                exchange.recipient.role,
                purpose_name(exchange.purpose),
                basis_name(exchange.basis),
            )),
            CedarDecision::Deny => Decision {
                permitted: false,
                rules,
                reasons,
            },
        }
    }
}

/// The stable name of a purpose, as policies spell it.
pub fn purpose_name(purpose: Purpose) -> &'static str {
    match purpose {
        Purpose::ThreatAssessment => "threat-assessment",
        Purpose::ThreatManagement => "threat-management",
        Purpose::Consultation => "consultation",
    }
}

/// The stable name of a legal basis, as policies spell it.
pub fn basis_name(basis: LegalBasis) -> &'static str {
    match basis {
        LegalBasis::Consent => "consent",
        LegalBasis::SeriousImminentThreat => "serious-imminent-threat",
        LegalBasis::HealthSafetyEmergency => "health-safety-emergency",
        LegalBasis::LawEnforcement => "law-enforcement",
        LegalBasis::DeIdentified => "de-identified",
    }
}

fn party(p: &Party) -> Result<RestrictedExpression, cedar_policy::ExpressionConstructionError> {
    RestrictedExpression::new_record([
        (
            "team".to_owned(),
            RestrictedExpression::new_string(p.team.clone()),
        ),
        (
            "federation".to_owned(),
            RestrictedExpression::new_string(p.federation.clone()),
        ),
        (
            "role".to_owned(),
            RestrictedExpression::new_string(p.role.as_str().to_owned()),
        ),
        (
            "discipline".to_owned(),
            RestrictedExpression::new_string(p.discipline.as_str().to_owned()),
        ),
        (
            "cjis_authorized".to_owned(),
            RestrictedExpression::new_bool(p.cjis_authorized),
        ),
    ])
}

fn context(
    exchange: &Exchange,
    consent: ConsentVerdict,
    labels: &[&str],
) -> Result<Context, String> {
    let pairs = vec![
        (
            "sender".to_owned(),
            party(&exchange.sender).map_err(|e| e.to_string())?,
        ),
        (
            "recipient".to_owned(),
            party(&exchange.recipient).map_err(|e| e.to_string())?,
        ),
        (
            "purpose".to_owned(),
            RestrictedExpression::new_string(purpose_name(exchange.purpose).to_owned()),
        ),
        (
            "basis".to_owned(),
            RestrictedExpression::new_string(basis_name(exchange.basis).to_owned()),
        ),
        (
            "justified".to_owned(),
            RestrictedExpression::new_bool(exchange.justified),
        ),
        (
            "consent_permits".to_owned(),
            RestrictedExpression::new_bool(consent.permits),
        ),
        (
            "consent_names_recipient".to_owned(),
            RestrictedExpression::new_bool(consent.names_recipient),
        ),
        (
            "reidentify".to_owned(),
            RestrictedExpression::new_bool(exchange.reidentify),
        ),
        (
            "labels".to_owned(),
            RestrictedExpression::new_set(
                labels
                    .iter()
                    .map(|l| RestrictedExpression::new_string((*l).to_owned())),
            ),
        ),
    ];
    Context::from_pairs(pairs).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn party(role: Role, discipline: Discipline, cjis: bool) -> Party {
        Party {
            team: "spiffe://f.example/team/x".into(),
            federation: "f.example".into(),
            role,
            discipline,
            cjis_authorized: cjis,
        }
    }

    #[test]
    fn the_default_pack_validates() {
        let policy = Policy::default_pack().unwrap();
        assert!(policy.rules().len() >= 10);
    }

    #[test]
    fn nothing_is_permitted_without_a_rule() {
        let policy = Policy::default_pack().unwrap();
        let exchange = Exchange {
            sender: party(Role::Affiliate, Discipline::MentalHealth, false),
            recipient: party(Role::Affiliate, Discipline::Education, false),
            purpose: Purpose::ThreatAssessment,
            basis: LegalBasis::Consent,
            justified: false,
            reidentify: false,
        };
        let decision = policy.decide(
            Action::Disclose,
            DataCategory::MentalHealth,
            &exchange,
            ConsentVerdict::default(),
            &[],
        );
        assert!(!decision.permitted);
        assert!(decision.rules.is_empty());
        assert!(
            decision.reasons[0].contains("no rule permits"),
            "{decision:?}"
        );
    }

    #[test]
    fn an_invalid_policy_is_reported_with_file_and_line() {
        let bad = "// a comment\npermit (principal, action == Action::\"disclose\", resource)\nwhen { context.purpse == \"x\" };\n";
        let err = Policy::from_sources(&[("local.cedar".into(), bad.into())]).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("local.cedar:3"), "{text}");
        let syntax = Policy::from_sources(&[(
            "broken.cedar".into(),
            "permit (principal,\n action ==".into(),
        )])
        .unwrap_err();
        assert!(syntax.to_string().contains("broken.cedar:2"), "{syntax}");
    }

    #[test]
    fn duplicate_rule_ids_are_refused() {
        let dup = "@id(\"consent\")\npermit (principal, action, resource);\n";
        let err = Policy::from_sources(&[("dup.cedar".into(), dup.into())]).unwrap_err();
        assert!(err.to_string().contains("already used"), "{err}");
    }
}
