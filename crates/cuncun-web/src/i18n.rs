//! Interface text in Chinese (default) and English. One table; a missing key shows the key itself
//! so a gap is visible rather than silent.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Zh,
    En,
}

impl Lang {
    pub fn from_tag(s: &str) -> Option<Lang> {
        match s {
            "zh" | "zh-CN" => Some(Lang::Zh),
            "en" => Some(Lang::En),
            _ => None,
        }
    }
    pub fn tag(self) -> &'static str {
        match self {
            Lang::Zh => "zh-CN",
            Lang::En => "en",
        }
    }
    pub fn other(self) -> Lang {
        match self {
            Lang::Zh => Lang::En,
            Lang::En => Lang::Zh,
        }
    }
    pub fn short(self) -> &'static str {
        match self {
            Lang::Zh => "zh",
            Lang::En => "en",
        }
    }
    /// Text of `key` in this language.
    pub fn s(&self, key: &str) -> &'static str {
        for (k, zh, en) in TEXT {
            if *k == key {
                return match self {
                    Lang::Zh => zh,
                    Lang::En => en,
                };
            }
        }
        "?"
    }
}

const TEXT: &[(&str, &str, &str)] = &[
    ("app.name", "村村 应急广播与公共服务平台", "cuncun public broadcasting platform"),
    ("lang.switch", "English", "中文"),
    ("nav.home", "首页", "Home"),
    ("nav.regions", "行政区划", "Regions"),
    ("nav.users", "用户", "Users"),
    ("nav.audit", "审计日志", "Audit log"),
    ("nav.logout", "退出", "Log out"),
    ("login.title", "登录", "Log in"),
    ("login.username", "用户名", "Username"),
    ("login.password", "密码", "Password"),
    ("login.submit", "登录", "Log in"),
    ("login.failed", "用户名或密码错误", "Wrong username or password"),
    ("login.limited", "尝试次数过多，请稍后再试", "Too many attempts; try again later"),
    ("login.disabled", "该账户已停用", "This account is disabled"),
    ("dash.title", "概况", "Overview"),
    ("dash.scope", "管辖范围", "Your region"),
    ("count.townships", "乡镇（街道）", "Townships"),
    ("count.villages", "行政村（社区）", "Villages"),
    ("count.hamlets", "自然村", "Hamlets"),
    ("count.households", "户数", "Households"),
    ("count.population", "人口", "Population"),
    ("count.terminals", "应急广播终端", "Emergency terminals"),
    ("count.stewards", "广电管家", "Service stewards"),
    ("count.outlets", "服务网点", "Service outlets"),
    ("region.code", "区划代码", "Region code"),
    ("region.name", "名称", "Name"),
    ("region.level", "层级", "Level"),
    ("region.children", "下级数量", "Subdivisions"),
    ("region.subdivisions", "下级区划", "Subdivisions"),
    ("region.none", "没有下级区划", "No subdivisions"),
    ("region.search", "搜索区划", "Search regions"),
    ("level.province", "省级", "Province"),
    ("level.city", "地级", "City"),
    ("level.county", "县级", "County"),
    ("level.township", "乡级", "Township"),
    ("level.village", "村级", "Village"),
    ("hamlet.title", "自然村", "Hamlets"),
    ("hamlet.add", "添加自然村", "Add hamlet"),
    ("hamlet.name", "自然村名称", "Hamlet name"),
    ("hamlet.households", "户数", "Households"),
    ("hamlet.population", "人口", "Population"),
    ("user.title", "用户管理", "Users"),
    ("user.add", "新建用户", "New user"),
    ("user.username", "用户名", "Username"),
    ("user.display_name", "姓名", "Name"),
    ("user.role", "角色", "Role"),
    ("user.region", "所属区划", "Region"),
    ("user.phone", "电话", "Phone"),
    ("user.password", "初始密码", "Initial password"),
    ("user.new_password", "新密码", "New password"),
    ("user.status", "状态", "Status"),
    ("user.active", "正常", "Active"),
    ("user.disabled", "已停用", "Disabled"),
    ("user.disable", "停用账户", "Disable account"),
    ("user.save", "保存", "Save"),
    ("user.create", "创建", "Create"),
    ("user.sessions", "登录会话", "Sessions"),
    ("user.revoke_all", "注销全部会话", "Revoke all sessions"),
    ("user.set_password", "重设密码", "Reset password"),
    ("user.created", "创建时间", "Created"),
    ("session.created", "登录时间", "Signed in"),
    ("session.expires", "过期时间", "Expires"),
    ("session.state", "状态", "State"),
    ("session.live", "有效", "Live"),
    ("session.revoked", "已注销", "Revoked"),
    ("session.expired", "已过期", "Expired"),
    ("role.admin", "管理员", "Administrator"),
    ("role.broadcaster", "播控员", "Broadcaster"),
    ("role.reviewer", "审核员", "Reviewer"),
    ("role.department_sender", "部门发布员", "Department sender"),
    ("role.steward", "广电管家", "Service steward"),
    ("role.viewer", "只读用户", "Viewer"),
    ("audit.title", "审计日志", "Audit log"),
    ("audit.seq", "序号", "Seq"),
    ("audit.at", "时间", "Time"),
    ("audit.actor", "操作人", "Actor"),
    ("audit.action", "操作", "Action"),
    ("audit.entity", "对象", "Object"),
    ("audit.change", "变更", "Change"),
    ("error.title", "出错了", "Something went wrong"),
    ("error.forbidden", "无权访问：超出您的权限或管辖范围", "Forbidden: outside your role or region"),
    ("error.not_found", "未找到", "Not found"),
    ("error.csrf", "表单已过期，请刷新页面后重试", "The form expired; reload the page and try again"),
    ("error.back", "返回首页", "Back to home"),
    ("saved", "已保存", "Saved"),
];

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn every_key_has_both_languages_and_is_unique() {
        let mut keys = std::collections::HashSet::new();
        for (k, zh, en) in TEXT {
            assert!(keys.insert(*k), "duplicate key {k}");
            assert!(!zh.is_empty() && !en.is_empty(), "{k}");
        }
        assert_eq!(Lang::Zh.s("nav.home"), "首页");
        assert_eq!(Lang::En.s("nav.home"), "Home");
        assert_eq!(Lang::En.s("no.such.key"), "?");
    }
}
