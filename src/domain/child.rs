//! The child's file (一人一档): [`ChildRecord`], its vocabularies, the authority of each field
//! (DESIGN §4), and validation that names the field and the reason.
//!
//! A record travels as a JSON object with every field present (`null` or `[]` when empty). The
//! per-field view ([`ChildRecord::to_fields`], [`ChildField`]) is what edits, merges and the
//! authority check work on; [`ChildRecord::from_fields`] is the one way back, and it validates.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::division::{TownshipCode, VillageCode};
use super::id_number::{IdNumber, Sex};
use super::month::Month;
use super::region::RegionCode;
pub use super::risk::RiskPalette;
use super::risk::{RiskError, RiskLevel};

/// Which bureau decides a field (DESIGN §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Authority {
    /// The bureau of the child's household registration.
    Hukou,
    /// The bureau where the child lives.
    Residence,
    /// Either side.
    Shared,
}

/// What a node is to one child: the bureau of its hukou, of its residence, or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Roles {
    pub hukou: bool,
    pub residence: bool,
}

impl Roles {
    pub fn is_party(&self) -> bool {
        self.hukou || self.residence
    }

    pub fn may_change(&self, field: ChildField) -> bool {
        match field.authority() {
            Authority::Hukou => self.hukou,
            Authority::Residence => self.residence,
            Authority::Shared => self.is_party(),
        }
    }
}

impl Category {
    /// 孤儿 and 事实无人抚养 are **recognitions** (认定) of the child's hukou bureau, set by it or by
    /// an approved eligibility case, never observations another bureau may make.
    pub fn is_recognition(self) -> bool {
        matches!(self, Category::Orphan | Category::DeFactoUnsupported)
    }
}

impl Benefit {
    /// The category an approved case for this benefit recognises.
    pub fn recognises(self) -> Option<Category> {
        match self {
            Benefit::OrphanAllowance => Some(Category::Orphan),
            Benefit::DeFactoUnsupportedSubsidy => Some(Category::DeFactoUnsupported),
            _ => None,
        }
    }
}

/// The first recognition `new` adds or removes relative to `old`: a change only the child's
/// hukou bureau may make.
pub fn recognition_changed(old: &BTreeSet<Category>, new: &BTreeSet<Category>) -> Option<Category> {
    old.symmetric_difference(new)
        .copied()
        .find(|c| c.is_recognition())
}

/// A **handover** (DESIGN §3): the hukou bureau, not the residence bureau, writes the child's
/// move to a bureau that asked for the file — a version changing `residence_region` and nothing
/// else. The one change a bureau may make to a field another role owns.
pub fn is_handover(roles: Roles, changed: &[ChildField]) -> bool {
    roles.hukou && !roles.residence && changed == [ChildField::ResidenceRegion]
}

macro_rules! child_fields {
    ($($variant:ident = $name:literal : $auth:ident),* $(,)?) => {
        /// A field of [`ChildRecord`], named as on the wire.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum ChildField { $($variant),* }

        impl ChildField {
            pub const ALL: &'static [ChildField] = &[$(ChildField::$variant),*];

            pub fn name(self) -> &'static str {
                match self { $(ChildField::$variant => $name),* }
            }

            pub fn authority(self) -> Authority {
                match self { $(ChildField::$variant => Authority::$auth),* }
            }

            pub fn from_name(name: &str) -> Option<Self> {
                match name { $($name => Some(ChildField::$variant),)* _ => None }
            }
        }
    };
}

child_fields! {
    IdNumber = "id_number": Hukou,
    Name = "name": Hukou,
    HukouRegion = "hukou_region": Hukou,
    HukouAddress = "hukou_address": Hukou,
    HukouTownship = "hukou_township": Hukou,
    HukouVillage = "hukou_village": Hukou,
    FatherSituation = "father_situation": Hukou,
    MotherSituation = "mother_situation": Hukou,
    LegalGuardian = "legal_guardian": Hukou,
    Guardianship = "guardianship": Hukou,
    Benefits = "benefits": Hukou,
    ResidenceRegion = "residence_region": Residence,
    ResidenceAddress = "residence_address": Residence,
    ResidenceTownship = "residence_township": Residence,
    ResidenceVillage = "residence_village": Residence,
    LeftHukouOn = "left_hukou_on": Residence,
    ActualCaregiver = "actual_caregiver": Residence,
    LivingStatus = "living_status": Residence,
    EducationStatus = "education_status": Residence,
    LastVisitOn = "last_visit_on": Residence,
    ResponsibleWorker = "responsible_worker": Residence,
    KeyCare = "key_care": Residence,
    InfoUpdatedOn = "info_updated_on": Residence,
    RiskLevel = "risk_level": Residence,
    Categories = "categories": Shared,
    HealthStatus = "health_status": Shared,
    Disability = "disability": Shared,
    PsychologicalState = "psychological_state": Shared,
    Notes = "notes": Shared,
}

impl fmt::Display for ChildField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A validation failure, naming the field (a wire name, or `record`) and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct FieldError {
    pub field: String,
    pub reason: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// Trimmed text of 1 to `MAX` characters that passes the human-text validator
/// ([`super::text::check`]: no control, bidirectional, invisible, tag or noncharacters; at least
/// one visible character; newlines and tabs only where `MULTILINE`).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Text<const MAX: usize, const MULTILINE: bool = false>(String);

impl<const MAX: usize, const MULTILINE: bool> Text<MAX, MULTILINE> {
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let n = s.chars().count();
        if n == 0 {
            return Err("must not be empty".into());
        }
        if n > MAX {
            return Err(format!("at most {MAX} characters, got {n}"));
        }
        super::text::check(s, MULTILINE)?;
        Ok(Self(s.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
impl<const MAX: usize, const M: bool> TryFrom<String> for Text<MAX, M> {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
    }
}
impl<const MAX: usize, const M: bool> From<Text<MAX, M>> for String {
    fn from(t: Text<MAX, M>) -> String {
        t.0
    }
}
impl<const MAX: usize, const M: bool> fmt::Debug for Text<MAX, M> {
    /// Free text can hold names; debug output never shows it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Text({} chars)", self.0.chars().count())
    }
}

pub type PersonName = Text<50>;
pub type Address = Text<200>;
pub type Notes = Text<2000, true>;

/// A person in the child's life: legal guardian (监护人) or actual caregiver (实际抚养人).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Person {
    #[schema(value_type = String, max_length = 50)]
    pub name: PersonName,
    /// Relation to the child, e.g. 祖父, 母亲, 村委会.
    #[schema(value_type = String, max_length = 32)]
    pub relation: Text<32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, max_length = 32)]
    pub phone: Option<Phone>,
}

/// A phone number: digits, spaces, `+` and `-`, 3 to 32 characters.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Phone(String);
impl TryFrom<String> for Phone {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let s = s.trim();
        let ok = (3..=32).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_digit() || matches!(b, b'+' | b'-' | b' '));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err("a phone number is 3-32 digits, spaces, + or -".into())
        }
    }
}
impl From<Phone> for String {
    fn from(p: Phone) -> String {
        p.0
    }
}
impl fmt::Debug for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Phone(…)")
    }
}

macro_rules! vocabulary {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $code:literal / $zh:literal),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum $name {
            $(#[serde(rename = $code, alias = $zh)] $variant),*
        }
        // Written by hand: the derive cannot read a `rename` given by a macro argument, and
        // spelled the variants' Rust names. On the wire a value is its code (what the node
        // writes) or its Chinese label (also accepted on input).
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .enum_values(Some([$($code, $zh),*]))
                    .description(Some(concat!(
                        "The English code (written by the node) or the Chinese label (accepted on input): ",
                        $($code, " ", $zh, "; "),*
                    )))
                    .into()
            }
        }
        impl utoipa::ToSchema for $name {
            fn name() -> std::borrow::Cow<'static, str> {
                std::borrow::Cow::Borrowed(stringify!($name))
            }
        }
        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),*];
            /// The stable English code used on the wire.
            pub fn code(self) -> &'static str { match self { $($name::$variant => $code),* } }
            /// The Chinese label used in ledgers and pages.
            pub fn label_zh(self) -> &'static str { match self { $($name::$variant => $zh),* } }
        }
    };
}

pub(crate) use vocabulary;

vocabulary! {
    /// Child categories (儿童类别).
    Category {
        Flowing = "flowing" / "流动",
        LeftBehind = "left_behind" / "留守",
        InDifficulty = "in_difficulty" / "困境",
        Orphan = "orphan" / "孤儿",
        DeFactoUnsupported = "de_facto_unsupported" / "事实无人抚养",
    }
}

vocabulary! {
    /// A parent's situation (父母情况); the last seven qualify a child as de-facto unsupported.
    ParentSituation {
        Normal = "normal" / "正常",
        WorkingAway = "working_away" / "外出务工",
        Unknown = "unknown" / "不详",
        Deceased = "deceased" / "死亡",
        Missing = "missing" / "失联",
        Imprisoned = "imprisoned" / "服刑在押",
        CompulsoryDetox = "compulsory_detox" / "强制隔离戒毒",
        RestrictedLiberty = "restricted_liberty" / "被限制人身自由",
        SeverelyDisabled = "severely_disabled" / "重残",
        SeriouslyIll = "seriously_ill" / "重病",
    }
}

vocabulary! {
    /// Benefits decided by the hukou bureau.
    Benefit {
        Dibao = "dibao" / "低保",
        Tekun = "tekun" / "特困",
        OrphanAllowance = "orphan_allowance" / "孤儿基本生活费",
        DeFactoUnsupportedSubsidy = "de_facto_unsupported_subsidy" / "事实无人抚养儿童生活补贴",
    }
}

vocabulary! {
    /// With whom the child lives (生活状况).
    LivingStatus {
        WithParents = "with_parents" / "与父母共同生活",
        WithOneParent = "with_one_parent" / "与父或母生活",
        WithGrandparents = "with_grandparents" / "与祖辈生活",
        WithRelatives = "with_relatives" / "与其他亲属生活",
        FosterFamily = "foster_family" / "家庭寄养",
        Institution = "institution" / "机构养育",
        Alone = "alone" / "独居",
        Other = "other" / "其他",
    }
}

vocabulary! {
    /// Schooling (就学状况).
    EducationStatus {
        NotOfSchoolAge = "not_of_school_age" / "未到入学年龄",
        Preschool = "preschool" / "学前",
        Primary = "primary" / "小学",
        JuniorSecondary = "junior_secondary" / "初中",
        SeniorSecondary = "senior_secondary" / "高中",
        Vocational = "vocational" / "中职",
        SpecialEducation = "special_education" / "特殊教育",
        OutOfSchool = "out_of_school" / "失学辍学",
    }
}

vocabulary! {
    /// Health (健康状况).
    HealthStatus {
        Healthy = "healthy" / "健康",
        ChronicIllness = "chronic_illness" / "慢性病",
        SeriousIllness = "serious_illness" / "重病",
        Disabled = "disabled" / "残疾",
    }
}

vocabulary! {
    /// Role of the worker responsible for a child (包保人).
    WorkerRole {
        ChildrenDirector = "children_director" / "儿童主任",
        ChildSupervisor = "child_supervisor" / "儿童督导员",
        SocialWorker = "social_worker" / "社工",
        Caseworker = "caseworker" / "民政工作人员",
        Other = "other" / "其他",
    }
}

vocabulary! {
    /// Why a child is in the key-care ledger (重点关爱).
    KeyCareReason {
        FamilyHardship = "family_hardship" / "家庭困难",
        OwnDisability = "own_disability" / "自身残疾",
        GuardianshipMissing = "guardianship_missing" / "监护缺失",
        StreetRoaming = "street_roaming" / "流浪",
        PsychologicalBehavioural = "psychological_behavioural" / "心理行为问题",
    }
}

vocabulary! {
    /// Kind of disability (残疾类别), GB/T 26341.
    DisabilityKind {
        Visual = "visual" / "视力残疾",
        Hearing = "hearing" / "听力残疾",
        Speech = "speech" / "言语残疾",
        Physical = "physical" / "肢体残疾",
        Intellectual = "intellectual" / "智力残疾",
        Mental = "mental" / "精神残疾",
        Multiple = "multiple" / "多重残疾",
    }
}

vocabulary! {
    /// Grade of disability (残疾等级), 一级 the most severe.
    DisabilityGrade {
        Grade1 = "grade_1" / "一级",
        Grade2 = "grade_2" / "二级",
        Grade3 = "grade_3" / "三级",
        Grade4 = "grade_4" / "四级",
    }
}

vocabulary! {
    /// Psychological state as last assessed (心理状况).
    PsychologicalState {
        Good = "good" / "良好",
        Fair = "fair" / "一般",
        NeedsAttention = "needs_attention" / "需关注",
        NeedsIntervention = "needs_intervention" / "需干预",
    }
}

vocabulary! {
    /// How the child's guardianship is arranged (监护方式).
    GuardianshipKind {
        Parents = "parents" / "父母监护",
        EntrustedCare = "entrusted_care" / "委托照护",
        TemporaryGuardianship = "temporary_guardianship" / "临时监护",
        LongTermGuardianship = "long_term_guardianship" / "长期监护",
        CourtAppointed = "court_appointed" / "法院指定监护",
        RevokedByCourt = "revoked_by_court" / "法院撤销监护资格",
    }
}

/// The guardianship arrangement and since when, with the reference and date of the agreement
/// (委托照护协议) or the decision it rests on. The person caring for the child under it is the
/// file's `actual_caregiver` (residence side).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Guardianship {
    pub kind: GuardianshipKind,
    /// The day it took effect.
    #[schema(value_type = String, format = Date)]
    pub since: NaiveDate,
    /// The agreement's or the court decision's reference number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, max_length = 64)]
    pub reference: Option<Text<64>>,
    /// The day the agreement was signed or the decision made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = Date)]
    pub decided_on: Option<NaiveDate>,
}

/// The worker responsible for a child (包保人), one-to-one or one of a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResponsibleWorker {
    #[schema(value_type = String, max_length = 50)]
    pub name: PersonName,
    pub role: WorkerRole,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, max_length = 32)]
    pub phone: Option<Phone>,
    /// The township (9 digits) the worker covers, inside the child's residence region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, pattern = "^[0-9]{9}$")]
    pub township: Option<TownshipCode>,
}

/// A disability: its kind and grade (as on the 残疾人证).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Disability {
    pub kind: DisabilityKind,
    pub grade: DisabilityGrade,
}

impl fmt::Display for Benefit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

vocabulary! {
    /// Why a benefit ended (退出原因).
    EndReason {
        Age18 = "age_18" / "年满18周岁",
        IncomeOver = "income_over" / "收入超标",
        Changed = "changed" / "情况变化",
        Deceased = "deceased" / "死亡",
        MovedOut = "moved_out" / "迁出",
        Other = "other" / "其他",
    }
}

/// When and why a benefit ended (退出): the grant stays in the file as history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BenefitEnd {
    /// The last month the benefit is paid, `YYYY-MM`; not before the grant's `since`.
    #[schema(value_type = String, example = "2026-12")]
    pub month: Month,
    pub reason: EndReason,
    /// Free text: the decision's reference, what changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, max_length = 200)]
    pub note: Option<Text<200>>,
}

/// A benefit the hukou bureau granted, with the month it took effect when known, when it is
/// next reviewed (复核) and, once it ended, when and why. A child *holds* a benefit while a
/// grant of it has not ended; an ended grant stays in the list as history, and at most one
/// grant of each benefit is active.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BenefitGrant {
    pub benefit: Benefit,
    /// `YYYY-MM`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "2026-01")]
    pub since: Option<Month>,
    /// The day the grant is next reviewed (复核); listed by the review due list while active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = Date)]
    pub review_on: Option<NaiveDate>,
    /// Set when the benefit ended; `null` while it is held.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended: Option<BenefitEnd>,
}

impl BenefitGrant {
    /// Whether the grant is still held (not ended).
    pub fn is_active(&self) -> bool {
        self.ended.is_none()
    }
}

/// One child's file. Sex and birth date are not stored: the ID number states them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChildRecord {
    // --- hukou authority ---
    /// 公民身份号码, GB 11643 (18 characters, check digit verified).
    #[schema(value_type = String, example = "410105201406010016")]
    pub id_number: IdNumber,
    #[schema(value_type = String, max_length = 50)]
    pub name: PersonName,
    /// GB/T 2260 code of the current household registration (户籍地).
    #[schema(value_type = String, example = "510104")]
    pub hukou_region: RegionCode,
    #[schema(value_type = Option<String>, max_length = 200)]
    pub hukou_address: Option<Address>,
    /// NBS 9-digit township (乡镇/街道) of the hukou, inside `hukou_region`.
    #[schema(value_type = Option<String>, pattern = "^[0-9]{9}$", example = "510104017")]
    pub hukou_township: Option<TownshipCode>,
    /// NBS 12-digit village or community (村/社区) of the hukou, inside `hukou_township`.
    #[schema(value_type = Option<String>, pattern = "^[0-9]{12}$", example = "510104017001")]
    pub hukou_village: Option<VillageCode>,
    pub father_situation: Option<ParentSituation>,
    pub mother_situation: Option<ParentSituation>,
    pub legal_guardian: Option<Person>,
    /// How guardianship is arranged (监护方式), with dates.
    pub guardianship: Option<Guardianship>,
    pub benefits: Vec<BenefitGrant>,
    // --- residence authority ---
    /// GB/T 2260 code of where the child lives (居住地).
    #[schema(value_type = String, example = "410105")]
    pub residence_region: RegionCode,
    #[schema(value_type = Option<String>, max_length = 200)]
    pub residence_address: Option<Address>,
    /// NBS 9-digit township (乡镇/街道) where the child lives, inside `residence_region`.
    #[schema(value_type = Option<String>, pattern = "^[0-9]{9}$", example = "410105001")]
    pub residence_township: Option<TownshipCode>,
    /// NBS 12-digit village or community (村/社区) where the child lives, inside
    /// `residence_township`.
    #[schema(value_type = Option<String>, pattern = "^[0-9]{12}$", example = "410105001001")]
    pub residence_village: Option<VillageCode>,
    pub left_hukou_on: Option<NaiveDate>,
    pub actual_caregiver: Option<Person>,
    pub living_status: Option<LivingStatus>,
    pub education_status: Option<EducationStatus>,
    pub last_visit_on: Option<NaiveDate>,
    /// The worker responsible for the child (包保人).
    pub responsible_worker: Option<ResponsibleWorker>,
    /// Reasons the child is in the key-care ledger (重点关爱); empty when not.
    pub key_care: BTreeSet<KeyCareReason>,
    /// When the residence side last confirmed the child's facts (信息更新日期): set by an edit
    /// of residence-side facts, or taken from a ledger's column on import. With `last_visit_on`
    /// it decides the six-month rule; storing or merging a version never changes it.
    pub info_updated_on: Option<NaiveDate>,
    /// The risk level on the common scale, 1 (most severe) to 4 (风险等级, DESIGN §4). The
    /// exchange carries the number; each node names it with its own palette (`risk_label` of a
    /// file), and people may type the local label where they write a record.
    #[schema(value_type = Option<u8>, minimum = 1, maximum = 4, example = 1)]
    pub risk_level: Option<RiskLevel>,
    // --- shared ---
    pub categories: BTreeSet<Category>,
    pub health_status: Option<HealthStatus>,
    pub disability: Option<Disability>,
    pub psychological_state: Option<PsychologicalState>,
    #[schema(value_type = Option<String>, max_length = 2000)]
    pub notes: Option<Notes>,
}

/// Fields of a record keyed by field, each a JSON value (`null` when empty).
pub type Fields = BTreeMap<ChildField, Value>;

/// What a record must satisfy beyond its types, and how this node reads what people type.
pub struct RecordRules<'a> {
    pub today: NaiveDate,
    pub palette: &'a RiskPalette,
}

impl RecordRules<'_> {
    /// Reads what people typed into the record's wire form, with this node's palette — the one
    /// place this happens, for every input people write (the admin API's create and patch
    /// bodies, the ledger CSV, `child edit --set`, a conflict's entered value): a `risk_level`
    /// given as a local label ("红") or as the level's number ("1", `1`) becomes the number.
    /// Anything else is refused, naming `risk_level`. The structural parse that follows (and
    /// every parse of a peer's version or a merged view) never consults the palette.
    pub fn read_input(&self, fields: &mut Fields) -> Result<(), FieldError> {
        let Some(v) = fields.get_mut(&ChildField::RiskLevel) else {
            return Ok(());
        };
        let level = match &*v {
            Value::Null => return Ok(()),
            Value::String(s) => self.palette.level_of(s),
            Value::Number(n) => n
                .as_f64()
                .filter(|x| x.fract() == 0.0 && (1.0..=4.0).contains(x))
                .and_then(|x| RiskLevel::new(x as u8).ok())
                .ok_or_else(|| RiskError::OutOfScale(n.to_string())),
            _ => {
                return Err(FieldError::new(
                    ChildField::RiskLevel.name(),
                    format!(
                        "must be a risk label here ({}) or a level 1–4",
                        self.palette.levels().join("/")
                    ),
                ))
            }
        }
        .map_err(|e| FieldError::new(ChildField::RiskLevel.name(), e.to_string()))?;
        *v = Value::from(level.get());
        Ok(())
    }
}

impl ChildRecord {
    pub fn sex(&self) -> Sex {
        self.id_number.sex()
    }

    pub fn birth_date(&self) -> NaiveDate {
        self.id_number.birth_date()
    }

    /// The record as one JSON value per field.
    pub fn to_fields(&self) -> Fields {
        let mut out = Fields::new();
        if let Ok(Value::Object(map)) = serde_json::to_value(self) {
            for (k, v) in map {
                if let Some(f) = ChildField::from_name(&k) {
                    out.insert(f, v);
                }
            }
        }
        out
    }

    /// Builds a record from per-field values as people typed them (missing optional fields are
    /// empty; [`RecordRules::read_input`] reads a local risk label) and checks the cross-field
    /// rules. The first failure names its field.
    pub fn from_fields(mut fields: Fields, rules: &RecordRules<'_>) -> Result<Self, FieldError> {
        rules.read_input(&mut fields)?;
        let record = Self::from_fields_structural(&fields)?;
        record.check(rules)?;
        Ok(record)
    }

    /// Builds a record checking types and value sets only, not the rules that depend on today's
    /// date, and never the local palette (a risk level is any number 1–4 here): for versions
    /// received from peers and merged views, which were checked where they were made.
    pub fn from_fields_structural(fields: &Fields) -> Result<Self, FieldError> {
        // Read the values where they are; only a failure pays for the copy that names the path.
        static NULL: Value = Value::Null;
        static EMPTY_LIST: Value = Value::Array(Vec::new());
        let borrowed = ChildField::ALL.iter().map(|f| {
            let empty = match empty_value(*f) {
                Value::Null => &NULL,
                _ => &EMPTY_LIST,
            };
            (f.name(), fields.get(f).unwrap_or(empty))
        });
        let de = serde::de::value::MapDeserializer::<_, serde_json::Error>::new(borrowed);
        if let Ok(record) = ChildRecord::deserialize(de) {
            return Ok(record);
        }
        Self::from_fields_structural_slow(fields)
    }

    /// [`ChildRecord::from_fields_structural`] of a JSON object (a version's body). A valid
    /// record is read in place; anything else gets the same error as through [`Fields`].
    pub fn from_json_structural(body: &Value) -> Result<Self, FieldError> {
        // Equal to the path through `Fields`: unknown keys are refused either way
        // (`deny_unknown_fields`), and a missing key is an empty optional field either way (a
        // missing list fails here and is filled with `[]` there).
        if let Ok(record) = ChildRecord::deserialize(body) {
            return Ok(record);
        }
        let fields = Self::fields_from_json(body.as_object().cloned().unwrap_or_default())?;
        Self::from_fields_structural_slow(&fields)
    }

    /// The copying path, whose error names the failing field.
    fn from_fields_structural_slow(fields: &Fields) -> Result<Self, FieldError> {
        let map: Map<String, Value> = ChildField::ALL
            .iter()
            .map(|f| {
                let v = fields.get(f).cloned().unwrap_or_else(|| empty_value(*f));
                (f.name().to_owned(), v)
            })
            .collect();
        let record: ChildRecord =
            serde_path_to_error::deserialize(Value::Object(map)).map_err(|e| {
                let path = e.path().to_string();
                let field = path.split(['.', '[']).next().unwrap_or("record").to_owned();
                FieldError::new(
                    if field.is_empty() {
                        "record".into()
                    } else {
                        field
                    },
                    clean_serde_reason(&e.into_inner().to_string()),
                )
            })?;
        Ok(record)
    }

    /// Parses a JSON object of fields (a create or patch body): unknown keys are refused, each
    /// known key keeps its raw value for [`ChildRecord::from_fields`].
    pub fn fields_from_json(map: Map<String, Value>) -> Result<Fields, FieldError> {
        let mut out = Fields::new();
        for (k, v) in map {
            let f = ChildField::from_name(&k)
                .ok_or_else(|| FieldError::new(k.clone(), "unknown field"))?;
            out.insert(f, v);
        }
        Ok(out)
    }

    fn check(&self, rules: &RecordRules<'_>) -> Result<(), FieldError> {
        self.check_where(rules, |_| true)
    }

    /// The rules of [`ChildRecord::from_fields`] for the fields an edit changes only: a field
    /// it leaves alone never makes it fail (a visit date checked when it was made).
    pub fn check_changed(
        &self,
        rules: &RecordRules<'_>,
        changed: &[ChildField],
    ) -> Result<(), FieldError> {
        self.check_where(rules, |f| changed.contains(&f))
    }

    fn check_where(
        &self,
        rules: &RecordRules<'_>,
        applies: impl Fn(ChildField) -> bool,
    ) -> Result<(), FieldError> {
        let birth = self.birth_date();
        if applies(ChildField::IdNumber) && birth > rules.today {
            return Err(FieldError::new(
                "id_number",
                "the birth date in the ID number is in the future",
            ));
        }
        for (field, date) in [
            (ChildField::LeftHukouOn, self.left_hukou_on),
            (ChildField::LastVisitOn, self.last_visit_on),
            (ChildField::InfoUpdatedOn, self.info_updated_on),
        ] {
            if !applies(field) {
                continue;
            }
            if let Some(d) = date {
                if d < birth {
                    return Err(FieldError::new(field.name(), "is before the birth date"));
                }
                if d > rules.today {
                    return Err(FieldError::new(field.name(), "is in the future"));
                }
            }
        }
        for (region, township, village, (rf, tf, vf)) in [
            (
                &self.hukou_region,
                &self.hukou_township,
                &self.hukou_village,
                (
                    ChildField::HukouRegion,
                    ChildField::HukouTownship,
                    ChildField::HukouVillage,
                ),
            ),
            (
                &self.residence_region,
                &self.residence_township,
                &self.residence_village,
                (
                    ChildField::ResidenceRegion,
                    ChildField::ResidenceTownship,
                    ChildField::ResidenceVillage,
                ),
            ),
        ] {
            if !(applies(rf) || applies(tf) || applies(vf)) {
                continue;
            }
            if let Some(t) = township {
                if t.county() != region.as_str() {
                    return Err(FieldError::new(
                        tf.name(),
                        format!("{t} is not a township of {}", region.as_str()),
                    ));
                }
            }
            match (township, village) {
                (None, Some(_)) => {
                    return Err(FieldError::new(vf.name(), "a village needs its township"));
                }
                (Some(t), Some(v)) if v.township() != t.as_str() => {
                    return Err(FieldError::new(
                        vf.name(),
                        format!("{v} is not a village of township {t}"),
                    ));
                }
                _ => {}
            }
        }
        if let Some(g) = self
            .guardianship
            .as_ref()
            .filter(|_| applies(ChildField::Guardianship))
        {
            for (what, d) in [("since", Some(g.since)), ("decided_on", g.decided_on)] {
                if let Some(d) = d {
                    if d > rules.today {
                        return Err(FieldError::new(
                            "guardianship",
                            format!("{what} {d} is in the future"),
                        ));
                    }
                }
            }
            if matches!(
                g.kind,
                GuardianshipKind::EntrustedCare
                    | GuardianshipKind::CourtAppointed
                    | GuardianshipKind::RevokedByCourt
            ) && g.reference.is_none()
            {
                return Err(FieldError::new(
                    "guardianship",
                    format!(
                        "{} rests on a document: give its reference",
                        g.kind.label_zh()
                    ),
                ));
            }
        }
        if let Some(t) = self
            .responsible_worker
            .as_ref()
            .and_then(|w| w.township.as_ref())
            .filter(|_| {
                applies(ChildField::ResponsibleWorker) || applies(ChildField::ResidenceRegion)
            })
        {
            if t.county() != self.residence_region.as_str() {
                return Err(FieldError::new(
                    "responsible_worker",
                    format!(
                        "the worker's township {t} is not in the residence region {}",
                        self.residence_region.as_str()
                    ),
                ));
            }
        }
        let mut active = BTreeSet::new();
        for g in self
            .benefits
            .iter()
            .filter(|_| applies(ChildField::Benefits))
        {
            if g.is_active() && !active.insert(g.benefit) {
                return Err(FieldError::new(
                    "benefits",
                    format!("{} is held twice: end one grant first", g.benefit),
                ));
            }
            if let (Some(since), Some(end)) = (g.since, &g.ended) {
                if end.month < since {
                    return Err(FieldError::new(
                        "benefits",
                        format!(
                            "{} ends in {} before it started in {since}",
                            g.benefit, end.month
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Whether the child holds `benefit` (a grant of it that has not ended).
    pub fn holds(&self, benefit: Benefit) -> bool {
        self.benefits
            .iter()
            .any(|g| g.benefit == benefit && g.is_active())
    }

    /// The benefits the child holds.
    pub fn held_benefits(&self) -> Vec<Benefit> {
        self.benefits
            .iter()
            .filter(|g| g.is_active())
            .map(|g| g.benefit)
            .collect()
    }

    /// Ends the active grant of `benefit` (退出): it stays in the list with its end. Refused,
    /// naming `field`, when the child does not hold the benefit or the end month is before the
    /// grant's start.
    pub fn end_benefit(
        &mut self,
        benefit: Benefit,
        end: BenefitEnd,
        field: &str,
    ) -> Result<(), FieldError> {
        let grant = self
            .benefits
            .iter_mut()
            .find(|g| g.benefit == benefit && g.is_active())
            .ok_or_else(|| {
                FieldError::new(
                    "benefit",
                    format!(
                        "the child does not hold {} ({})",
                        benefit,
                        benefit.label_zh()
                    ),
                )
            })?;
        if let Some(since) = grant.since {
            if end.month < since {
                return Err(FieldError::new(
                    field,
                    format!("{} is before the benefit started ({since})", end.month),
                ));
            }
        }
        grant.ended = Some(end);
        Ok(())
    }

    /// Fields whose values differ between two records.
    pub fn changed_fields(old: &Fields, new: &Fields) -> Vec<ChildField> {
        ChildField::ALL
            .iter()
            .copied()
            .filter(|f| old.get(f) != new.get(f))
            .collect()
    }
}

/// The empty value of a field: `[]` for list fields, `null` otherwise.
pub fn empty_value(field: ChildField) -> Value {
    match field {
        ChildField::Benefits | ChildField::Categories | ChildField::KeyCare => Value::Array(vec![]),
        _ => Value::Null,
    }
}

/// serde's messages mention Rust types; keep the part a person can act on.
fn clean_serde_reason(msg: &str) -> String {
    msg.split(" at line ").next().unwrap_or(msg).to_owned()
}

impl ChildField {
    /// The Chinese label of a field (the ledger's column names), for pages and the console.
    pub fn label_zh(self) -> &'static str {
        match self {
            ChildField::IdNumber => "身份证号",
            ChildField::Name => "姓名",
            ChildField::HukouRegion => "户籍地",
            ChildField::HukouAddress => "户籍地址",
            ChildField::FatherSituation => "父亲情况",
            ChildField::MotherSituation => "母亲情况",
            ChildField::LegalGuardian => "法定监护人",
            ChildField::Benefits => "享受待遇",
            ChildField::ResidenceRegion => "居住地",
            ChildField::ResidenceAddress => "居住地址",
            ChildField::LeftHukouOn => "离开户籍地日期",
            ChildField::ActualCaregiver => "实际照料人",
            ChildField::LivingStatus => "生活状况",
            ChildField::EducationStatus => "就学状况",
            ChildField::LastVisitOn => "最近走访日期",
            ChildField::Guardianship => "监护方式",
            ChildField::ResponsibleWorker => "包保人",
            ChildField::KeyCare => "重点关爱",
            ChildField::Disability => "残疾",
            ChildField::PsychologicalState => "心理状况",
            ChildField::HukouTownship => "户籍地乡镇（街道）",
            ChildField::HukouVillage => "户籍地村（社区）",
            ChildField::ResidenceTownship => "居住地乡镇（街道）",
            ChildField::ResidenceVillage => "居住地村（社区）",
            ChildField::InfoUpdatedOn => "信息更新日期",
            ChildField::RiskLevel => "风险等级",
            ChildField::Categories => "儿童类别",
            ChildField::HealthStatus => "健康状况",
            ChildField::Notes => "备注",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules(p: &RiskPalette) -> RecordRules<'_> {
        RecordRules {
            today: NaiveDate::from_ymd_opt(2026, 11, 23).unwrap(),
            palette: p,
        }
    }

    fn sample() -> Map<String, Value> {
        let id = IdNumber::generate(
            &RegionCode::parse("510104").unwrap(),
            NaiveDate::from_ymd_opt(2014, 6, 1).unwrap(),
            1,
        );
        json!({
            "id_number": id.as_str(),
            "name": "张小明",
            "hukou_region": "510104",
            "residence_region": "410105",
            "categories": ["flowing", "留守"],
            "risk_level": "黄",
            "father_situation": "外出务工",
            "legal_guardian": {"name": "张大山", "relation": "父亲", "phone": "13800000000"},
            "last_visit_on": "2026-10-01",
        })
        .as_object()
        .unwrap()
        .clone()
    }

    #[test]
    fn builds_and_round_trips() {
        let p = RiskPalette::default();
        let fields = ChildRecord::fields_from_json(sample()).unwrap();
        let rec = ChildRecord::from_fields(fields, &rules(&p)).unwrap();
        assert!(rec.categories.contains(&Category::LeftBehind));
        assert_eq!(rec.father_situation, Some(ParentSituation::WorkingAway));
        let again = ChildRecord::from_fields(rec.to_fields(), &rules(&p)).unwrap();
        assert_eq!(rec, again);
        assert_eq!(rec.to_fields().len(), ChildField::ALL.len());
    }

    /// The in-place readings agree with the copying one on every outcome, valid or not: each
    /// field of a full record removed, emptied or given a value of every JSON type, an unknown
    /// key, and a body that is not an object.
    #[test]
    fn reading_in_place_agrees_with_the_copying_path() {
        let p = RiskPalette::default();
        let full =
            ChildRecord::from_fields(ChildRecord::fields_from_json(sample()).unwrap(), &rules(&p))
                .unwrap();
        let Value::Object(full) = serde_json::to_value(&full).unwrap() else {
            panic!("a record serializes to an object")
        };
        let mut bodies = vec![
            Value::Object(sample()),
            Value::Object(full.clone()),
            json!(7),
        ];
        for key in full.keys() {
            let mut removed = full.clone();
            removed.remove(key);
            bodies.push(Value::Object(removed));
            for v in [
                json!(null),
                json!(5),
                json!("x"),
                json!([]),
                json!({}),
                json!(true),
            ] {
                let mut changed = full.clone();
                changed.insert(key.clone(), v);
                bodies.push(Value::Object(changed));
            }
        }
        let mut unknown = full.clone();
        unknown.insert("nickname".into(), json!("小明"));
        bodies.push(Value::Object(unknown));
        let mut valid = 0;
        for body in &bodies {
            let copied =
                ChildRecord::fields_from_json(body.as_object().cloned().unwrap_or_default())
                    .and_then(|f| ChildRecord::from_fields_structural_slow(&f));
            assert_eq!(ChildRecord::from_json_structural(body), copied, "{body}");
            if let Ok(fields) =
                ChildRecord::fields_from_json(body.as_object().cloned().unwrap_or_default())
            {
                assert_eq!(
                    ChildRecord::from_fields_structural(&fields),
                    ChildRecord::from_fields_structural_slow(&fields),
                    "{body}"
                );
            }
            valid += usize::from(copied.is_ok());
        }
        // Both outcomes were exercised.
        assert!(
            valid > 10 && valid < bodies.len() - 10,
            "{valid} of {}",
            bodies.len()
        );
    }

    /// What people type is read with the palette; the structural parse takes numbers only.
    #[test]
    fn a_risk_label_or_number_is_read_with_the_palette_and_nothing_else() {
        let p = RiskPalette::new(["橙", "红", "黄", "绿"].map(String::from).to_vec()).unwrap();
        let read = |v: Value| {
            let mut f = Fields::from([(ChildField::RiskLevel, v)]);
            rules(&p)
                .read_input(&mut f)
                .map(|()| f[&ChildField::RiskLevel].clone())
        };
        assert_eq!(read(json!("橙")), Ok(json!(1)));
        assert_eq!(read(json!(" 红 ")), Ok(json!(2)));
        assert_eq!(read(json!("3")), Ok(json!(3)));
        assert_eq!(read(json!(4)), Ok(json!(4)));
        assert_eq!(read(json!(4.0)), Ok(json!(4)));
        assert_eq!(read(Value::Null), Ok(Value::Null));
        for bad in [
            json!("蓝"),
            json!("0"),
            json!("5"),
            json!("1.5"),
            json!(1.5),
            json!(0),
            json!(-1),
            json!(true),
            json!([1]),
        ] {
            assert_eq!(read(bad.clone()).unwrap_err().field, "risk_level", "{bad}");
        }
        let mut m = sample();
        m.insert("risk_level".into(), json!("红"));
        let f = ChildRecord::fields_from_json(m).unwrap();
        assert_eq!(
            ChildRecord::from_fields_structural(&f).unwrap_err().field,
            "risk_level"
        );
        let r = ChildRecord::from_fields(f, &rules(&p)).unwrap();
        assert_eq!(r.risk_level.map(RiskLevel::get), Some(2));
    }

    #[test]
    fn errors_name_the_field() {
        let p = RiskPalette::default();
        let mut m = sample();
        m.insert("residence_address".into(), json!(5));
        let f = ChildRecord::fields_from_json(m).unwrap();
        let e = ChildRecord::from_fields(f, &rules(&p)).unwrap_err();
        assert_eq!(e.field, "residence_address");
        assert!(e.reason.contains("invalid type"), "{}", e.reason);

        let mut m = sample();
        m.insert("risk_level".into(), json!("紫"));
        let f = ChildRecord::fields_from_json(m).unwrap();
        assert_eq!(
            ChildRecord::from_fields(f, &rules(&p)).unwrap_err().field,
            "risk_level"
        );

        let mut m = sample();
        m.insert("hukou_region".into(), json!("519999"));
        let f = ChildRecord::fields_from_json(m).unwrap();
        let e = ChildRecord::from_fields(f, &rules(&p)).unwrap_err();
        assert_eq!(e.field, "hukou_region");
        assert!(e.reason.contains("GB/T 2260"));

        let mut m = sample();
        m.insert(
            "legal_guardian".into(),
            json!({"name": "x", "relation": "y", "age": 3}),
        );
        let f = ChildRecord::fields_from_json(m).unwrap();
        assert_eq!(
            ChildRecord::from_fields(f, &rules(&p)).unwrap_err().field,
            "legal_guardian"
        );

        let mut m = sample();
        m.insert("colour".into(), json!("red"));
        assert_eq!(
            ChildRecord::fields_from_json(m).unwrap_err().field,
            "colour"
        );

        let mut m = sample();
        m.remove("name");
        let f = ChildRecord::fields_from_json(m).unwrap();
        assert_eq!(
            ChildRecord::from_fields(f, &rules(&p)).unwrap_err().field,
            "name"
        );

        let mut m = sample();
        m.insert("last_visit_on".into(), json!("2000-01-01"));
        let f = ChildRecord::fields_from_json(m).unwrap();
        assert_eq!(
            ChildRecord::from_fields(f, &rules(&p)).unwrap_err().reason,
            "is before the birth date"
        );
    }

    #[test]
    fn authority_of_fields() {
        let residence = Roles {
            hukou: false,
            residence: true,
        };
        assert!(residence.may_change(ChildField::RiskLevel));
        assert!(residence.may_change(ChildField::Notes));
        assert!(!residence.may_change(ChildField::Benefits));
        assert!(!Roles::default().may_change(ChildField::Notes));
        assert_eq!(ChildField::ALL.len(), 29);
        for f in ChildField::ALL {
            assert_eq!(ChildField::from_name(f.name()), Some(*f));
        }
    }
}
