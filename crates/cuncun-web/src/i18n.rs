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
    ("count.terminals_online", "当前在线终端", "Terminals online now"),
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
    ("nav.terminals", "终端", "Terminals"),
    ("nav.messages", "应急消息", "Warnings"),
    ("eb.terminals", "应急广播终端与前端", "Terminals and front-ends"),
    ("eb.code", "资源编码", "Resource code"),
    ("eb.hamlet", "所在自然村(指定)", "Hamlet (assign)"),
    ("eb.kind", "类型", "Kind"),
    ("eb.status", "状态", "Status"),
    ("eb.online", "在线", "Online"),
    ("eb.offline", "离线", "Offline"),
    ("eb.never", "未接入", "Never seen"),
    ("eb.last_seen", "最后心跳", "Last seen"),
    ("eb.volume", "音量", "Volume"),
    ("eb.task", "当前任务", "Current task"),
    ("eb.faults", "故障码", "Faults"),
    ("eb.problems", "问题终端", "Problems"),
    ("eb.all", "全部", "All"),
    ("eb.register", "登记终端", "Register a device"),
    ("eb.vendor", "厂商", "Vendor"),
    ("eb.model", "型号", "Model"),
    ("eb.install_date", "安装日期", "Install date"),
    ("eb.lon", "经度", "Longitude"),
    ("eb.lat", "纬度", "Latitude"),
    ("eb.secret", "接入密钥（仅显示一次）", "Device secret (shown once)"),
    ("eb.retire", "停用", "Retire"),
    ("eb.reset_secret", "重置密钥", "Reset secret"),
    ("eb.retired", "已停用", "Retired"),
    ("eb.messages", "应急广播消息", "Emergency messages"),
    ("eb.compose", "编辑新消息", "Compose a message"),
    ("eb.event", "事件类型", "Event type"),
    ("eb.severity", "预警级别", "Severity"),
    ("eb.title", "标题", "Title"),
    ("eb.text", "内容", "Text"),
    ("eb.areas", "覆盖区域（区划代码，逗号分隔）", "Target areas (region codes, comma-separated)"),
    ("eb.targets", "指定终端（资源编码，可选）", "Explicit terminals (resource codes, optional)"),
    ("eb.start", "开始时间", "Start"),
    ("eb.end", "结束时间", "End"),
    ("eb.valid_minutes", "有效时长（分钟）", "Valid for (minutes)"),
    ("eb.repeat", "播放次数", "Repeats"),
    ("eb.drill", "演练", "Drill"),
    ("eb.audio_upload", "上传录音（WAV/MP3/Ogg，替换语音合成）", "Upload a recording (WAV/MP3/Ogg, replaces text-to-speech)"),
    ("eb.audio_replace", "上传", "Upload"),
    ("xlsx.template", "下载导入模板", "Download the import template"),
    ("xlsx.export", "导出 Excel", "Export to Excel"),
    ("xlsx.import", "从 Excel 导入", "Import from Excel"),
    ("xlsx.all_or_nothing", "有错误时不导入任何行", "Import nothing if any row is wrong"),
    ("xlsx.valid_rows", "只导入正确的行（跳过错误行）", "Import the valid rows only (skip the bad ones)"),
    ("xlsx.result", "导入结果", "Import result"),
    ("xlsx.imported", "已导入", "Imported"),
    ("xlsx.nothing", "文件有错误，未导入任何行。请按错误报告修改后重新上传。", "The file has errors; nothing was imported. Fix them using the report and upload again."),
    ("xlsx.errors", "错误", "Errors"),
    ("xlsx.row", "行", "Row"),
    ("xlsx.column", "列", "Column"),
    ("xlsx.message", "说明", "Message"),
    ("xlsx.report", "下载错误报告", "Download the error report"),
    ("xlsx.secrets", "下载新设备的编码与密钥（仅一次）", "Download the new devices' codes and secrets (once)"),
    ("eb.connections", "连接记录", "Connection history"),
    ("eb.connected", "连接", "Connected"),
    ("eb.disconnected", "断开", "Disconnected"),
    ("eb.logs", "播发记录", "Broadcast log"),
    ("eb.source", "来源", "Source"),
    ("eb.result", "结果", "Result"),
    ("eb.updates", "更新的原消息编号（可选）", "Updates message (EBMID, optional)"),
    ("eb.related", "关联消息", "Related message"),
    ("eb.priority", "类别", "Kind"),
    ("eb.emergency", "应急", "Emergency"),
    ("eb.routine", "日常", "Routine"),
    ("eb.save_draft", "保存草稿", "Save draft"),
    ("eb.reach", "覆盖范围", "Reach"),
    ("eb.reach_terminals", "终端", "Terminals"),
    ("eb.reach_online", "在线", "Online"),
    ("eb.msg_status", "状态", "Status"),
    ("eb.submit", "提交审核", "Submit for review"),
    ("eb.approve", "批准播发", "Approve and send"),
    ("eb.reject", "退回", "Send back"),
    ("eb.cancel", "撤销", "Cancel"),
    ("eb.delivery", "播发进度", "Delivery"),
    ("eb.received", "已接收", "Received"),
    ("eb.started", "已开始", "Started"),
    ("eb.finished", "已完成", "Finished"),
    ("eb.failed", "失败", "Failed"),
    ("eb.pending", "未接收", "Not received"),
    ("eb.pending_offline", "其中离线", "of which offline"),
    ("eb.undelivered", "未接收终端", "Terminals that have not received it"),
    ("eb.export", "导出 CSV", "Export CSV"),
    ("eb.author", "发起人", "Author"),
    ("eb.approver", "审核人", "Approver"),
    ("nav.online", "在线率", "Online rate"),
    ("ix.title", "上下级平台对接", "Interchange with other platforms"),
    ("ix.disabled", "本平台未配置与上下级平台对接（配置文件 [interchange]）。", "Interchange is not configured on this platform ([interchange] in the configuration)."),
    ("ix.own", "本平台", "This platform"),
    ("ix.peer", "平台", "Platform"),
    ("ix.role", "关系", "Relation"),
    ("ix.parent", "上级", "Parent"),
    ("ix.child", "下级", "Child"),
    ("ix.link", "链路", "Link"),
    ("ix.since", "状态起始", "Since"),
    ("ix.last_ok", "最近正常", "Last OK"),
    ("ix.error", "错误", "Error"),
    ("ix.inbox", "收到的数据包", "Packages received"),
    ("ix.outbox", "发出的数据包", "Packages sent"),
    ("ix.time", "时间", "Time"),
    ("ix.from", "来自", "From"),
    ("ix.to", "发往", "To"),
    ("ix.desc", "说明", "Description"),
    ("ix.attempts", "尝试次数", "Attempts"),
    ("ix.pending", "待发送", "pending"),
    ("nav.interchange", "平台对接", "Interchange"),
    ("nav.cap", "CAP预警导入", "CAP import"),
    ("online.title", "终端日在线率", "Daily terminal online rate"),
    ("online.day", "日期", "Day"),
    ("online.overall", "总在线率", "Overall"),
    ("online.method", "方法：在线时长 ÷ 应在线时长（按终端登记和停用时间），断线 60 秒内重连视为在线；区域在线率为所辖终端在线时长之和 ÷ 应在线时长之和。", "Method: online time ÷ expected time (from registration to retirement); reconnects within 60 s count as online; a region's rate is the sum of its terminals' online time over the sum of their expected time."),
    ("online.worst", "在线率低于 90% 的终端", "Terminals below 90%"),
    ("online.show", "查看", "Show"),
    ("status.draft", "草稿", "Draft"),
    ("status.submitted", "待审核", "Submitted"),
    ("status.approved", "已批准", "Approved"),
    ("status.dispatching", "播发中", "Dispatching"),
    ("status.completed", "已完成", "Completed"),
    ("status.cancelled", "已撤销", "Cancelled"),
    ("status.expired", "已过期", "Expired"),
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
