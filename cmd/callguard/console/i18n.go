package console

import (
	"fmt"
	"net/http"

	"golang.org/x/text/language"
)

// Languages of the console; the first is the default.
var languages = []language.Tag{language.English, language.Russian}

var matcher = language.NewMatcher(languages)

// langCode returns "en" or "ru" for a tag the matcher chose.
func langCode(t language.Tag) string {
	base, _ := t.Base()
	if base.String() == "ru" {
		return "ru"
	}
	return "en"
}

// validLang reports whether code is a language of the console.
func validLang(code string) bool { return code == "en" || code == "ru" }

// pickLang chooses the page's language: the lang cookie when it names one
// of ours, else the best match of Accept-Language, else English.
func pickLang(r *http.Request) string {
	if c, err := r.Cookie(langCookie); err == nil && validLang(c.Value) {
		return c.Value
	}
	tags, _, err := language.ParseAcceptLanguage(r.Header.Get("Accept-Language"))
	if err != nil || len(tags) == 0 {
		return "en"
	}
	_, i, conf := matcher.Match(tags...)
	if conf == language.No {
		return "en"
	}
	return langCode(languages[i])
}

// msg is one entry of the catalogue: the English and Russian text.
type msg struct{ en, ru string }

// translate returns key's text in lang, formatted with args when there
// are any; an unknown key shows as itself (a test keeps templates and the
// catalogue in step).
func translate(lang, key string, args ...any) string {
	m, ok := catalogue[key]
	if !ok {
		return key
	}
	s := m.en
	if lang == "ru" {
		s = m.ru
	}
	if len(args) > 0 {
		return fmt.Sprintf(s, args...)
	}
	return s
}

// catalogue holds every text the console shows.
var catalogue = map[string]msg{
	// Layout and navigation.
	"app.name":       {"callguard console", "консоль callguard"},
	"nav.today":      {"Today", "Сегодня"},
	"nav.numbers":    {"Numbers", "Номера"},
	"nav.blacklist":  {"Blacklist", "Чёрный список"},
	"nav.whitelist":  {"Whitelist", "Белый список"},
	"nav.reports":    {"Reports", "Отчёты"},
	"nav.whatif":     {"What-if", "Что если"},
	"nav.users":      {"Users", "Пользователи"},
	"nav.signout":    {"Sign out", "Выйти"},
	"nav.main":       {"Main menu", "Главное меню"},
	"nav.language":   {"Language", "Язык"},
	"role.viewer":    {"viewer", "наблюдатель"},
	"role.operator":  {"operator", "оператор"},
	"role.admin":     {"admin", "администратор"},
	"common.unavail": {"Not available on this node.", "На этом узле недоступно."},
	"common.none":    {"None.", "Нет."},
	"common.show":    {"Show", "Показать"},
	"common.next":    {"Next page", "Следующая страница"},
	"common.csv":     {"Download CSV", "Скачать CSV"},
	"common.yes":     {"yes", "да"},
	"common.no":      {"no", "нет"},
	"common.failed":  {"Could not read: %s", "Не удалось прочитать: %s"},
	"common.times":   {"Times are in %s.", "Время указано в поясе %s."},
	"common.lagging": {"lagging: %d s behind — the latest changes may not show yet", "отстаёт на %d с — последние изменения могут быть ещё не видны"},
	"common.stale":   {"stale: the read model has stopped (see Today); rebuild it", "устарело: проекция остановилась (см. «Сегодня»); перестройте её"},

	// Sign-in.
	"signin.title":    {"Sign in", "Вход"},
	"signin.user":     {"Name", "Имя"},
	"signin.password": {"Password", "Пароль"},
	"signin.submit":   {"Sign in", "Войти"},
	"signin.bad":      {"Wrong name or password.", "Неверное имя или пароль."},
	"signin.limited":  {"Too many failed attempts; try again in a few minutes.", "Слишком много неудачных попыток; повторите через несколько минут."},
	"signin.expired":  {"The form has expired; please sign in again.", "Форма устарела; войдите ещё раз."},

	// Error pages.
	"error.title":   {"Error %d", "Ошибка %d"},
	"error.404":     {"There is no such page.", "Такой страницы нет."},
	"error.403":     {"You may not do that.", "Вам это не разрешено."},
	"error.403csrf": {"The form has expired or did not come from this console; reload the page and try again.", "Форма устарела или отправлена не из консоли; обновите страницу и повторите."},
	"error.405":     {"This page does not take that request.", "Эта страница не принимает такой запрос."},
	"error.413":     {"What you sent is too large.", "Отправленное слишком велико."},
	"error.500":     {"Something went wrong on the guard; the log says what.", "На стороне guard что-то пошло не так; подробности в журнале."},
	"error.back":    {"Back to Today", "На страницу «Сегодня»"},

	// Today.
	"today.calls":           {"Calls today", "Звонки сегодня"},
	"today.callsin":         {"Calls in", "Входящих"},
	"today.passed":          {"Passed", "Пропущено"},
	"today.challenged":      {"Challenged", "На проверку"},
	"today.rejected":        {"Rejected", "Отклонено"},
	"today.unanswered":      {"Unanswered share", "Доля неотвеченных"},
	"today.chpassed":        {"Challenges passed", "Проверок пройдено"},
	"today.chfailed":        {"Challenges failed", "Проверок провалено"},
	"today.chabandoned":     {"Challenges abandoned", "Проверок брошено"},
	"today.unbilled":        {"Calls ended unbilled", "Звонков без оплаты"},
	"today.saved":           {"Money saved", "Сэкономлено"},
	"today.would":           {"Observe mode: would reject / challenge", "Режим наблюдения: отклонил бы / проверил бы"},
	"today.live":            {"Now", "Сейчас"},
	"today.active":          {"Calls in progress", "Идущих звонков"},
	"today.inchallenge":     {"Challenges in progress", "Идущих проверок"},
	"today.store":           {"Event store", "Хранилище событий"},
	"today.store.ok":        {"healthy", "в порядке"},
	"today.store.bad":       {"failing:", "сбой:"},
	"today.attack":          {"Lines under attack", "Линии под атакой"},
	"today.noattack":        {"No line is under attack.", "Ни одна линия не под атакой."},
	"today.since":           {"since", "с"},
	"today.manual":          {"switched on by", "включил"},
	"today.hour":            {"Hour", "Час"},
	"today.hourly":          {"Calls per hour", "Звонки по часам"},
	"today.chart.today":     {"Today", "Сегодня"},
	"today.chart.yesterday": {"Yesterday", "Вчера"},
	"today.projections":     {"Read side", "Проекции"},
	"today.proj.name":       {"Projection", "Проекция"},
	"today.proj.state":      {"State", "Состояние"},
	"today.proj.lagevents":  {"Behind (events)", "Отставание (событий)"},
	"today.proj.lagseconds": {"Behind (s)", "Отставание (с)"},

	// Numbers and the caller page.
	"numbers.q":               {"Number or its start", "Номер или его начало"},
	"numbers.search":          {"Search", "Найти"},
	"numbers.help":            {"Any usual spelling: +7 916 123-45-67, 8 916 123 45 67, 916123. A whole number opens its page.", "В любой привычной записи: +7 916 123-45-67, 8 916 123 45 67, 916123. Полный номер открывает его страницу."},
	"numbers.results":         {"Callers starting with %s", "Номера, начинающиеся с %s"},
	"numbers.number":          {"Number", "Номер"},
	"numbers.calls":           {"Calls", "Звонков"},
	"numbers.today":           {"Today", "Сегодня"},
	"numbers.lastcall":        {"Last call", "Последний звонок"},
	"numbers.lastverdict":     {"Last verdict", "Последнее решение"},
	"numbers.blocks":          {"Blocks", "Блокировок"},
	"numbers.badprefix":       {"%q is not the start of a phone number: use digits, optionally after a +.", "%q — не начало телефонного номера: нужны цифры, можно с + в начале."},
	"numbers.badnumber":       {"%q is not a phone number.", "%q — не телефонный номер."},
	"caller.status":           {"Standing", "Статус"},
	"caller.standing":         {"Now", "Сейчас"},
	"caller.whitelisted":      {"whitelisted", "в белом списке"},
	"caller.blocked":          {"blocked at level %d", "заблокирован, уровень %d"},
	"caller.clear":            {"no block, not whitelisted", "без блокировки, не в белом списке"},
	"caller.since":            {"since", "с"},
	"caller.until":            {"until", "до"},
	"caller.next":             {"A call now would be", "Звонок сейчас получит"},
	"caller.hourday":          {"Calls in the last hour / day", "Звонков за час / сутки"},
	"caller.failed":           {"Failed challenges (day)", "Проваленных проверок (сутки)"},
	"caller.verified":         {"verified until", "подтверждён до"},
	"caller.range":            {"Range rule", "Правило диапазона"},
	"caller.known":            {"History", "История"},
	"caller.never":            {"The guard has never seen this number.", "Guard ни разу не видел этот номер."},
	"caller.summary":          {"All time", "За всё время"},
	"caller.calls":            {"Calls", "Звонков"},
	"caller.challenges":       {"Challenges passed / failed / abandoned", "Проверок пройдено / провалено / брошено"},
	"caller.blocks":           {"Blocks by the rules / by hand", "Блокировок правилами / вручную"},
	"caller.actions":          {"Actions", "Действия"},
	"caller.why":              {"Why (recorded with your name)", "Причина (записывается с вашим именем)"},
	"caller.untilopt":         {"Until (optional)", "До (необязательно)"},
	"caller.level":            {"Level", "Уровень"},
	"caller.level.soft":       {"challenge", "проверка"},
	"caller.level.hard":       {"reject", "отказ"},
	"caller.do.whitelist":     {"Whitelist", "В белый список"},
	"caller.do.unwhitelist":   {"Remove from whitelist", "Убрать из белого списка"},
	"caller.do.block":         {"Block", "Заблокировать"},
	"caller.do.unblock":       {"Unblock", "Разблокировать"},
	"caller.done.whitelist":   {"%s is whitelisted.", "%s добавлен в белый список."},
	"caller.done.unwhitelist": {"%s is no longer whitelisted.", "%s убран из белого списка."},
	"caller.done.block":       {"%s is blocked.", "%s заблокирован."},
	"caller.done.unblock":     {"%s is unblocked.", "%s разблокирован."},
	"caller.refused":          {"Not done: %s", "Не выполнено: %s"},
	"caller.baduntil":         {"Not done: %q is not a date and time.", "Не выполнено: %q — не дата и время."},
	"caller.err.state":        {"Not done, it does not fit the number's standing: %s", "Не выполнено, не подходит к статусу номера: %s"},
	"caller.err.store":        {"Not done: the event store failed; try again.", "Не выполнено: сбой хранилища событий; повторите."},
	"caller.err.unavailable":  {"Not done: the guard did not answer in time; try again.", "Не выполнено: guard не ответил вовремя; повторите."},
	"caller.timeline":         {"Audit timeline, newest first", "История, новые сверху"},
	"caller.hidden":           {"%d older entries are not shown; the CLI's callguard audit shows them all.", "Ещё %d старых записей не показаны; все показывает callguard audit."},
	"tl.call":                 {"Call", "Звонок"},
	"tl.verdict":              {"verdict", "решение"},
	"tl.action":               {"carried out as", "выполнено как"},
	"tl.rule":                 {"rule", "правило"},
	"tl.level":                {"level", "уровень"},
	"tl.counts":               {"%d in the hour, %d in the day", "%d за час, %d за сутки"},
	"tl.challenge":            {"Challenge", "Проверка"},
	"tl.block":                {"Blocked at level %d", "Блокировка, уровень %d"},
	"tl.limit":                {"%d calls over a limit of %d", "%d звонков при пределе %d"},
	"tl.by":                   {"by", "кто"},
	"tl.counted":              {"%d calls that made it fire", "%d звонков, из-за которых сработало"},
	"tl.unnamed":              {"and %d older ones the event does not name", "и ещё %d более ранних, не названных в событии"},
	"tl.unblock":              {"Unblocked", "Разблокирован"},
	"tl.whitelist":            {"Whitelisted", "Добавлен в белый список"},
	"tl.unwhitelist":          {"Removed from the whitelist", "Убран из белого списка"},

	// Lists and the import.
	"lists.prefix":         {"Number starts with", "Номер начинается с"},
	"lists.any":            {"any", "любой"},
	"lists.kind":           {"Set by", "Кем"},
	"lists.kind.auto":      {"the rules", "правилами"},
	"lists.kind.manual":    {"hand", "вручную"},
	"lists.expired":        {"Include expired", "С истёкшими"},
	"lists.total":          {"Entries: %d.", "Записей: %d."},
	"lists.since":          {"Since", "С"},
	"lists.until":          {"Until", "До"},
	"lists.by":             {"By", "Кто"},
	"lists.rule":           {"Rule", "Правило"},
	"lists.effect":         {"Effect", "Действие"},
	"lists.reason":         {"Why", "Причина"},
	"import.title":         {"Import a whitelist CSV", "Загрузка белого списка из CSV"},
	"import.help":          {"A header row with a number column, and optionally until, by and reason. Rows without a reason get the one below; every row is recorded with your name unless it names another.", "Первая строка — заголовок со столбцом number, по желанию until, by и reason. Строкам без причины достаётся указанная ниже; каждая строка записывается с вашим именем, если в ней не указано другое."},
	"import.file":          {"CSV file", "Файл CSV"},
	"import.why":           {"Reason for rows without one", "Причина для строк без неё"},
	"import.submit":        {"Import", "Загрузить"},
	"import.nofile":        {"Choose a CSV file to import.", "Выберите файл CSV."},
	"import.rows":          {"Rows read", "Прочитано строк"},
	"import.applied":       {"Applied now", "Применено"},
	"import.repeated":      {"Already applied by an earlier import", "Уже применены прежней загрузкой"},
	"import.failed":        {"Not applied", "Не применено"},
	"import.ignored":       {"Columns ignored", "Пропущенные столбцы"},
	"import.line":          {"Line", "Строка"},
	"import.field":         {"Column", "Столбец"},
	"import.problem":       {"What is wrong", "Что не так"},
	"import.retry":         {"import the same file again to retry", "загрузите тот же файл ещё раз"},
	"import.nobad":         {"Every row was applied.", "Все строки применены."},
	"import.col.number":    {"number", "номер"},
	"import.col.until":     {"until", "срок"},
	"import.col.by":        {"by", "кто"},
	"import.col.reason":    {"reason", "причина"},
	"import.row.nonumber":  {"No number.", "Нет номера."},
	"import.row.number":    {"Not a phone number: write it in E.164 (+79990001122) or as a national number of region %s.", "Не номер телефона: нужен номер в формате E.164 (+79990001122) или национальный номер региона %s."},
	"import.row.duplicate": {"The same number as line %d.", "Тот же номер, что в строке %d."},
	"import.row.text":      {"Missing, or not one line of at most %d characters without control characters: fill the column in or give a reason for rows without one.", "Не заполнено или не одна строка до %d знаков без управляющих символов: заполните столбец или укажите причину для строк без неё."},
	"import.row.until":     {"%q is not a time: write a duration (30d, 720h), a date (2026-12-31) or a time with its offset (2026-12-31T23:59:59+03:00).", "%q — не срок: нужна длительность (30d, 720h), дата (2026-12-31) или время со смещением (2026-12-31T23:59:59+03:00)."},
	"import.row.past":      {"%q is not in the future.", "Срок %q уже прошёл."},
	"import.row.refused":   {"Refused: %s.", "Отклонено: %s."},
	"import.row.retry":     {"Not applied: the guard could not record it now.", "Не применено: сейчас не удалось записать."},
	"import.file.encoding": {"The file is not UTF-8 text: save it from the spreadsheet as CSV UTF-8.", "Файл не в кодировке UTF-8: сохраните его из таблицы как CSV UTF-8."},
	"import.file.empty":    {"The file is empty: the first row must be a header with a number column.", "Файл пуст: первая строка должна быть заголовком со столбцом number."},
	"import.file.twice":    {"Column %s appears twice in the header.", "Столбец %s дважды указан в заголовке."},
	"import.file.nonumber": {"The header %q has no number column (want number, until, by, reason).", "В заголовке %q нет столбца number (нужны number, until, by, reason)."},
	"import.file.toomany":  {"More than %d rows: split the file.", "Больше %d строк: разделите файл."},
	"import.file.syntax":   {"The file cannot be read as CSV (%s).", "Файл не читается как CSV (%s)."},
	"lists.badlevel":       {"Level %q is not a number.", "Уровень %q — не число."},

	// Reports.
	"reports.from":       {"From", "С"},
	"reports.to":         {"To", "По"},
	"reports.callee":     {"Called number", "Вызываемый номер"},
	"reports.allcallees": {"all lines", "все линии"},
	"reports.range":      {"From %s to %s (%s).", "С %s по %s (%s)."},
	"reports.calls":      {"Calls per day", "Звонки по дням"},
	"reports.savedshare": {"Money saved and unanswered share (%) per day", "Сэкономлено и доля неотвеченных (%) по дням"},
	"reports.share":      {"Unanswered share", "Доля неотвеченных"},
	"reports.daily":      {"By day", "По дням"},
	"reports.day":        {"Day", "День"},
	"reports.top":        {"Top callers", "Самые частые номера"},

	// What-if.
	"whatif.help":            {"Replays the whole log under other settings and shows which numbers would stand differently and how many calls would be decided differently. Leave a setting empty to keep the node's.", "Перепроигрывает весь журнал с другими настройками и показывает, какие номера оказались бы в другом статусе и сколько звонков получили бы другое решение. Пустая настройка остаётся как на узле."},
	"whatif.viewer":          {"Operators and admins may run a what-if replay.", "Запускать перепроигрывание могут операторы и администраторы."},
	"whatif.now":             {"now", "сейчас"},
	"whatif.run":             {"Replay", "Перепроиграть"},
	"whatif.busy":            {"Another replay is running; try again when it ends.", "Уже идёт другое перепроигрывание; повторите, когда оно закончится."},
	"whatif.result":          {"What would change", "Что изменится"},
	"whatif.replayed":        {"Replayed", "Перепроиграно"},
	"whatif.counts":          {"%d calls of %d numbers", "%d звонков от %d номеров"},
	"whatif.callschanged":    {"Calls decided differently", "Звонков с другим решением"},
	"whatif.numberschanged":  {"Numbers that would stand differently", "Номеров в другом статусе"},
	"whatif.unresolved":      {"Calls challenged only under these settings (outcome unknown)", "Звонков на проверку только при этих настройках (исход неизвестен)"},
	"whatif.nowcol":          {"Now", "Сейчас"},
	"whatif.wouldbe":         {"Would be", "Было бы"},
	"whatif.differs":         {"What differs", "Что отличается"},
	"whatif.callschangedcol": {"Calls changed", "Звонков изменилось"},
	"whatif.same":            {"Every number would stand as it does.", "Все номера остались бы в том же статусе."},
	"whatif.err.value":       {"%s: %q is not a value of this setting.", "%s: %q — недопустимое значение."},
	"whatif.err.nonnegative": {"%s is %s: want 0 (off) or more.", "%s: %s — нужно 0 (выключено) или больше."},
	"whatif.err.positive":    {"%s is %s: want a positive duration (24h, 90m).", "%s: %s — нужна положительная длительность (24h, 90m)."},
	"whatif.err.range":       {"%s is %s: want %d to %d.", "%s: %s — нужно от %d до %d."},
	"whatif.err.oneof":       {"%s is %s: choose one of the listed verdicts.", "%s: %s — выберите одно из предложенных решений."},
	"whatif.err.atleast":     {"%s (%s) must be at least %s (%s).", "%s (%s): должно быть не меньше, чем %s (%s)."},
	"whatif.err.above":       {"%s (%s) must be above %s (%s).", "%s (%s): должно быть больше, чем %s (%s)."},
	"whatif.more":            {"%d more numbers are not shown; callguard replay lists them all.", "Ещё %d номеров не показаны; все перечисляет callguard replay."},
	// The what-if form's settings, by the names the replay (and "callguard
	// replay") takes; TestEverySettingHasALabel keeps them complete.
	"setting.limit-hour":                {"Calls in an hour before a block", "Звонков за час до блокировки"},
	"setting.limit-day":                 {"Calls in a day before a block", "Звонков за сутки до блокировки"},
	"setting.limit-level":               {"Level a broken limit sets", "Уровень блокировки за превышение"},
	"setting.block-for":                 {"An automatic block lasts", "Срок автоматической блокировки"},
	"setting.escalate-after":            {"Failed challenges in a day before escalation", "Проваленных проверок за сутки до эскалации"},
	"setting.escalation-level":          {"Level escalation sets", "Уровень при эскалации"},
	"setting.count-abandoned":           {"A challenge hung up on counts as failed", "Брошенная проверка считается проваленной"},
	"setting.verified-for":              {"A passed challenge lets the caller through for", "Пройденная проверка пропускает номер в течение"},
	"setting.anonymous":                 {"Verdict for a withheld number", "Решение для скрытого номера"},
	"setting.max-concurrent-per-caller": {"Calls at once from one caller (0: no limit)", "Одновременных звонков с одного номера (0 — без ограничения)"},
	"setting.concurrent-verdict":        {"Verdict above that", "Решение сверх этого"},
	"setting.try-block":                 {"Try a range block: RANGE:LEVEL, such as +7999123:7", "Попробовать блокировку диапазона: ДИАПАЗОН:УРОВЕНЬ, например +7999123:7"},
	"setting.try-whitelist":             {"Try a range whitelist: RANGE, such as +7999123", "Попробовать белый диапазон: ДИАПАЗОН, например +7999123"},
	"setting.try-line":                  {"Try a line's own settings: LINE:SETTING=VALUE,…", "Попробовать настройки линии: ЛИНИЯ:НАСТРОЙКА=ЗНАЧЕНИЕ,…"},

	// Users.
	"users.role":          {"Role", "Роль"},
	"users.since":         {"Created", "Создан"},
	"users.state":         {"State", "Состояние"},
	"users.active":        {"active", "активен"},
	"users.disabled":      {"disabled", "отключён"},
	"users.setrole":       {"Change role", "Сменить роль"},
	"users.enable":        {"Enable", "Включить"},
	"users.disable":       {"Disable", "Отключить"},
	"users.newpassword":   {"New password", "Новый пароль"},
	"users.setpassword":   {"Set password", "Задать пароль"},
	"users.create":        {"New user", "Новый пользователь"},
	"users.add":           {"Create", "Создать"},
	"users.self":          {"You cannot change your own role or disable yourself; ask another admin.", "Нельзя менять свою роль или отключать себя; попросите другого администратора."},
	"users.done.create":   {"User %s created.", "Пользователь %s создан."},
	"users.done.role":     {"The role of %s is changed.", "Роль %s изменена."},
	"users.done.password": {"The password of %s is changed.", "Пароль %s изменён."},
	"users.done.disable":  {"%s is disabled and signed out.", "%s отключён, его сеансы завершены."},
	"users.done.enable":   {"%s is enabled.", "%s включён."},

	// Words of the domain (view.W).
	"w.pass":      {"pass", "пропуск"},
	"w.challenge": {"challenge", "проверка"},
	"w.reject":    {"reject", "отказ"},
	"w.passed":    {"passed", "пройдена"},
	"w.failed":    {"failed", "провалена"},
	"w.abandoned": {"abandoned", "брошена"},
	"w.auto":      {"by the rules", "правилами"},
	"w.manual":    {"by hand", "вручную"},

	// A projection's state on Today (runner.State; view.In "state").
	"state.running":  {"running", "работает"},
	"state.failed":   {"failed", "остановлена сбоем"},
	"state.retrying": {"retrying", "повторяет запись"},
	"state.stopped":  {"stopped", "остановлена"},

	// The rules behind a block or a verdict (schema.Rule; view.In "rule").
	"rule.hourly-limit":    {"hourly limit", "лимит в час"},
	"rule.daily-limit":     {"daily limit", "лимит в сутки"},
	"rule.escalation":      {"escalation", "эскалация"},
	"rule.manual":          {"by hand", "вручную"},
	"rule.whitelist":       {"whitelist", "белый список"},
	"rule.concurrent":      {"concurrent calls", "одновременные звонки"},
	"rule.vip":             {"VIP client", "VIP-клиент"},
	"rule.attack":          {"line under attack", "линия под атакой"},
	"rule.country":         {"country", "страна"},
	"rule.number-type":     {"number type", "тип номера"},
	"rule.verified":        {"verified by a challenge", "подтверждён проверкой"},
	"rule.anonymous":       {"anonymous caller", "скрытый номер"},
	"rule.range-whitelist": {"whitelisted range", "диапазон в белом списке"},
	"rule.range-block":     {"blocked range", "заблокированный диапазон"},

	// The fields of a standing a what-if compares (replay.Number.Differs;
	// view.In "field").
	"field.level":          {"level", "уровень"},
	"field.kind":           {"set by", "кем"},
	"field.rule":           {"rule", "правило"},
	"field.until":          {"until", "до"},
	"field.whitelisted":    {"whitelisted", "белый список"},
	"field.whitelistUntil": {"whitelisted until", "в белом списке до"},
	"field.verifiedUntil":  {"verified until", "подтверждён до"},
	"field.next":           {"next call", "следующий звонок"},
}
