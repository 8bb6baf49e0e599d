package login

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// The pages say what the customer manual (パスキーによるログイン方法のご案内)
// shows, word for word; where the manual contradicts itself or names a
// control that does not exist, the catalogue (templates/messages.go) says
// which reading the page takes.

func TestS1SaysTheManualsWords(t *testing.T) {
	e := newEnv(t, "sqlite", nil)
	ar := e.authRequest(nil)
	e.expect(e.get("/login?authRequestID="+ar), http.StatusOK,
		`パスキーを設定済みのお客様は「パスキーでログイン」<strong class="badge">（当社推奨方式）</strong>。`,
		`<label for="loginID">ログイン ID :</label>`, `<label for="password">ログインパスワード :</label>`, "ログイン &gt;")
}

func TestS2NamesOnlyControlsThatExist(t *testing.T) {
	e := newEnv(t, "sqlite", nil)
	ar := e.authRequest(nil)
	e.get("/login?authRequestID=" + ar)
	r := e.get("/login/passkey")
	e.expect(r, http.StatusOK, "未登録の方は「パスキー初回登録」から、ログインおよびパスキー登録へお進みください。",
		"パスキー登録済みの場合、ログイン画面の「ログイン」ボタンでのログインはできません。",
		"※パスキー登録済みの場合、「パスキー初回登録」は選択しません。",
		"※パスキーを利用しない場合は、ログイン画面の「ログイン」ボタンを選択します。")
	if strings.Contains(r.body, "パスキー登録の方はこちら") {
		t.Error("S2 names 「パスキー登録の方はこちら」, a button it does not have")
	}
}

func TestS5AfterF1SaysTheManualsWords(t *testing.T) {
	e := newEnv(t, "sqlite", nil)
	u := e.createUser("mika", "s3cret-pass")
	code := e.startF1(u, "s3cret-pass")
	e.expectRedirect(e.post("/login/otp", url.Values{"code": {code}}), "/login/passkey/create")
	e.expect(e.get("/login/passkey/create"), http.StatusOK, "このデバイス上でコムストックローン用にパスキーを作成", "パスキーを作成",
		"パスワードを覚えておく必要がありません", "パスキーでは、ログインに指紋や顔認証が使用できます。",
		"すべての使用の全デバイスで使用可能", "同期されています", "パスキーはフィッシングに対する最先端のセキュリティを提供します。",
		"パスキー作成なしでログイン")
}

func TestS5AfterCrossDeviceHasTheImportantBox(t *testing.T) {
	e := newPasskeyEnv(t, "sqlite")
	u := e.createUser("sora", "s3cret-pass")
	phone := e.enrol(u, "s3cret-pass")
	e.logout()
	ar := e.authRequest(nil)
	e.get("/login?authRequestID=" + ar)
	e.expect(e.passkeyLogin(phone, "cross-platform"), http.StatusOK)
	r := e.get("/login/passkey/create")
	e.expect(r, http.StatusOK, "このデバイスでクイックにサインイン",
		`<section class="important" id="s5-more" aria-labelledby="s5-more-title">`,
		`<h2 id="s5-more-title">【重要】パスキーの追加登録について</h2>`,
		"<p>この画面にて、「パスキーを作成」を選択することで、この端末でもパスキー登録ができます。</p>",
		"<p>パスキーの追加（複数登録）の方法はこちらになりますので、必要に応じて登録ください。</p>")
	if strings.Contains(r.body, "左記画面") {
		t.Error("S5 points at 「左記画面」, the manual's screenshot")
	}
}

func TestS9HasEveryManualSection(t *testing.T) {
	e := newEnv(t, "sqlite", nil)
	r := e.get("/help")
	e.expect(r, http.StatusOK,
		"1. はじめに", "○パスキーとは", "【主なメリット】",
		"2. ご利用前の確認事項", "<h3>スマートフォン、タブレットまたはパソコンで利用可能</h3>",
		"本サービスは、スマートフォン（iPhone・Android）、タブレット端末、およびパソコンからご利用いただけます。なお、推奨環境は以下となります。",
		`<th scope="col">OS</th><th scope="col">ブラウザ※</th>`, "<td>Windows11</td><td>Microsoft Edge</td>",
		"※Chrome, Safari 等でもご利用は可能です。",
		"<h3>生体認証等の設定が必要</h3>", "生体認証（指紋認証・顔認証）等が設定されている必要があります。",
		"<h3>端末ごとに登録が必要</h3>",
		"3. パスキーの登録方法", "3-1. パスキー登録操作の流れ", "<td>④</td><td>「続ける」(ご本人確認画面)</td><td>ワンタイムパスワード</td>",
		"3-2. パスキーの登録方法", "※スマートフォン、パソコン共通の操作となります。",
		"②「パスキーでログイン」画面 下部に「ログイン ID」を入力し、「パスキー初回登録」ボタンを選択",
		"4. パスキーによるログイン方法", "4-1. 端末内のパスキーを利用したログイン（通常の方法）",
		"パスキー登録完了後は、「パスキーでログイン」を選択することでログインができます。",
		"4-2. PC 等（パスキー未登録の端末）へのログイン（クロスデバイス認証）", "操作の流れ（全体イメージ）",
		"<td>③</td><td>「パスキーの選択」画面等にて QR コードを表示</td><td>↓</td>",
		"④QR コードをパスキー登録済みの端末にて読み込み、パスキー認証を実施、完了",
		"※QR コードを表示させる操作を選択してください。", "【重要】パスキーの追加登録について",
		"5. 注意事項", "6. よくあるご質問",
		"Q. セキュリティキー（USB 等）を挿入していただくと表示される", "（顔認証、指紋、PIN）", "下記の場合、それぞれ設定を有効（ON）にしてください。",
		"迷惑メールボックスに振り分けられている", "ワンタイムパスワード（通知メール）が迷惑メールに振り分けられている場合がございます。",
		"ブラックリストに登録されている（ホワイトリスト化）",
		"7. お問い合わせ先", "[受付時間：平日 9:00 – 17:00]")
	// The manual writes these brackets full-width; the page did not.
	for _, half := range []string{"(iPhone", "(指紋", "(USB", "(ON)", "(顔認証", "(通知メール)", "(ホワイトリスト化)", "受付時間:"} {
		if strings.Contains(r.body, half) {
			t.Errorf("S9 has the half-width %q where the manual is full-width", half)
		}
	}
	// The manual names a screen 「コムストック WEB サイトへのログイン」; S1 is called otherwise.
	if !strings.Contains(r.body, "①「コムストックローンWEBサイトへログイン」画面より「パスキーでログイン」ボタンを選択") {
		t.Error("S9's steps do not name S1 by its title")
	}
	en := e.get("/help?lang=en")
	e.expect(en, http.StatusOK, "3. Registering a passkey", "4-2. On a PC or other device without a passkey (cross-device sign-in)",
		"Scan the QR code", "7. Contact", "[Hours: Weekdays 9:00 – 17:00]")
	if han := regexp.MustCompile(`\p{Han}`); han.MatchString(strings.SplitN(en.body, "[Hours:", 2)[1][:40]) {
		t.Errorf("English hours are not English: %s", strings.SplitN(en.body, "[Hours:", 2)[1][:40])
	}
}
